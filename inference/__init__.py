"""Telegram-free screening core: decode → quality gate → LiteRT classifier → risk.

    from inference import Screener
    screener = Screener.load()          # the shipped model and its card
    result = screener.screen(photo_bytes)
"""

from inference.decode import DecodeError, decode
from inference.labels import CLASSES, MALIGNANT
from inference.screener import ModelCard, Screener, ScreeningResult

__all__ = ["CLASSES", "MALIGNANT", "DecodeError", "ModelCard", "Screener", "ScreeningResult", "decode"]
