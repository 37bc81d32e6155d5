"""Real parts for the production-path tests: Debian's nginx with TLS (running the deploy config
from ``deploy/nginx``), a fresh PostgreSQL database per test, and free ports."""

from __future__ import annotations

import asyncio
import datetime
import os
import shutil
import signal
import socket
import uuid
from pathlib import Path

from .conftest import ROOT

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
POSTGRES = os.environ.get("TEST_POSTGRES_URL")
#: Why the PostgreSQL tests skip: the variable is what is missing, whether or not a server runs.
NO_POSTGRES = (
    "set TEST_POSTGRES_URL to run the PostgreSQL tests, e.g. TEST_POSTGRES_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/test "
    "(a server and an empty database it may write to; .ci/run sets it)"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def self_signed(folder: Path, host: str = "127.0.0.1") -> tuple[Path, Path]:
    """A certificate for ``host`` and its key (the test's own CA: the fake Bot API trusts it,
    as Telegram trusts a certificate uploaded with ``setWebhook``)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return cert_path, key_path


def render_site(**values: str) -> str:
    """``deploy/nginx/kz-skin-bot.conf`` with its ``@@MARKER@@``s filled in."""
    site = (ROOT / "deploy" / "nginx" / "kz-skin-bot.conf").read_text()
    for marker, value in values.items():
        site = site.replace(f"@@{marker}@@", value)
    assert "@@" not in site, "every marker filled in"
    return site


class Nginx:
    """``deploy/nginx/kz-skin-bot.conf`` rendered for loopback and run in the foreground."""

    def __init__(self, folder: Path, upstreams: list[int], path: str = "/tg"):
        self.folder, self.upstreams, self.path = folder, upstreams, path
        self.port = free_port()
        self.proc: asyncio.subprocess.Process | None = None
        folder.mkdir(parents=True, exist_ok=True)
        self.cert, self.key = self_signed(folder)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}{self.path}"

    def trust(self):
        """An SSL context that trusts this proxy's certificate (and nothing else)."""
        import ssl

        return ssl.create_default_context(cafile=str(self.cert))

    def render(self) -> Path:
        site = render_site(
            UPSTREAMS="\n    ".join(f"server 127.0.0.1:{p} max_fails=1 fail_timeout=2s;" for p in self.upstreams),
            LISTEN=f"127.0.0.1:{self.port}",
            SERVER_NAME="127.0.0.1",
            CERT=str(self.cert),
            KEY=str(self.key),
            PATH=self.path,
        )
        (self.folder / "site.conf").write_text(site)
        d = self.folder
        main = "\n".join(
            [
                "user root;" if os.geteuid() == 0 else "",
                "worker_processes 1;",
                f"pid {d}/nginx.pid;",
                f"error_log {d}/error.log warn;",
                "events { worker_connections 512; }",
                "http {",
                f"  access_log {d}/access.log;",
                *(f"  {kind}_temp_path {d}/{kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")),
                f"  include {d}/site.conf;",
                "}",
            ]
        )
        conf = self.folder / "nginx.conf"
        conf.write_text(main)
        return conf

    async def start(self) -> Nginx:
        conf = self.render()
        self.proc = await asyncio.create_subprocess_exec(NGINX, "-p", str(self.folder), "-c", str(conf), "-g", "daemon off;", stderr=asyncio.subprocess.PIPE)
        for _ in range(200):
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.close()
                return self
            except OSError:
                if self.proc.returncode is not None:
                    raise RuntimeError("nginx did not start: " + (await self.proc.stderr.read()).decode())
                await asyncio.sleep(0.05)
        raise RuntimeError("nginx did not listen")

    async def stop(self) -> None:
        if self.proc and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGQUIT)
            await asyncio.wait_for(self.proc.wait(), 10)

    def access_log(self) -> str:
        path = self.folder / "access.log"
        return path.read_text() if path.exists() else ""


async def fresh_postgres() -> tuple[str, callable]:
    """A new, empty database on the test server; returns (URL, async drop)."""
    import asyncpg

    base = POSTGRES.replace("postgresql+asyncpg://", "postgresql://")
    name = "kzskin_" + uuid.uuid4().hex[:12]
    conn = await asyncpg.connect(base)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    url = POSTGRES.rsplit("/", 1)[0] + "/" + name

    async def drop() -> None:
        conn = await asyncpg.connect(base)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()

    return url, drop
