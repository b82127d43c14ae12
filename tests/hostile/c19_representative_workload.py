# expect-output-without: FAILED
# class 19: the seccomp allow-list still runs what tenant code really does: subprocesses
# (this interpreter, Debian's python3, a shell, git), threads, a process pool, SQLite in
# WAL mode, TCP/UDP/unix sockets to listeners of its own (the jail's network is loopback
# only; in a pod the same calls reach the egress proxy), asyncio, files, time and random.
# Each check that fails says FAILED; tests/sandbox/test_seccomp.py runs the same checks
# under the filter outside the jail, against a listener of the test's own and over TLS
import asyncio
import concurrent.futures
import hashlib
import json
import mmap
import multiprocessing
import os
import random
import secrets
import shutil
import socket
import sqlite3
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path


def _square(n):
    return n * n


def _subprocesses(work):
    ran = ["this python"]
    out = subprocess.run([sys.executable, "-I", "-c", "print(6 * 7)"], capture_output=True,
                         text=True, timeout=30, check=True)
    assert out.stdout.strip() == "42", out
    if os.path.exists("/usr/bin/python3"):  # Debian's, as in the sandbox image
        out = subprocess.run(["/usr/bin/python3", "-c", "import os, sqlite3; print(os.getpid() > 0)"],
                             capture_output=True, text=True, timeout=30, check=True)
        assert out.stdout.strip() == "True", out
        ran.append("/usr/bin/python3")
    out = subprocess.run(["sh", "-c", "echo one two | tr ' ' '\\n' | wc -l; ls / > /dev/null"],
                         capture_output=True, text=True, timeout=30, check=True)
    assert out.stdout.strip() == "2", out
    ran.append("sh")
    if shutil.which("git"):
        repo = work / "repo"
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(work),
               "GIT_CONFIG_NOSYSTEM": "1"}
        git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
        subprocess.run([*git, "init", "-q", str(repo)], env=env, check=True, timeout=30,
                       capture_output=True)
        (repo / "f.txt").write_text("hello\n")
        subprocess.run([*git, "-C", str(repo), "add", "f.txt"], env=env, check=True,
                       timeout=30, capture_output=True)
        subprocess.run([*git, "-C", str(repo), "commit", "-q", "-m", "one"], env=env,
                       check=True, timeout=30, capture_output=True)
        log = subprocess.run([*git, "-C", str(repo), "log", "--oneline"], env=env, check=True,
                             timeout=30, capture_output=True, text=True)
        assert "one" in log.stdout, log
        ran.append("git")
    with subprocess.Popen(["sleep", "30"]) as proc:  # and it can be stopped again
        proc.terminate()
        assert proc.wait(timeout=10) != 0
    return ", ".join(ran)


def _threads(work):
    lock, total = threading.Lock(), []

    def add(n):
        with lock:
            total.append(_square(n))

    threads = [threading.Thread(target=add, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(total) == sum(n * n for n in range(16))
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        assert list(pool.map(_square, range(8))) == [n * n for n in range(8)]
    done = threading.Event()
    threading.Timer(0.01, done.set).start()
    assert done.wait(5)


def _process_pool(work):
    with multiprocessing.get_context("fork").Pool(2) as pool:  # (builtins: tenant code's
        assert pool.map(abs, range(-3, 3)) == [3, 2, 1, 0, 1, 2]  # module is not importable)
    lock = multiprocessing.get_context("fork").Lock()  # a POSIX semaphore in /dev/shm
    with lock:
        pass


def _sqlite(work):
    path = str(work / "wal.db")
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal"
    db.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)")
    with db:
        db.executemany("INSERT INTO t (v) VALUES (?)", [(str(n),) for n in range(500)])
    seen = []

    def reader():
        other = sqlite3.connect(path)
        seen.append(other.execute("SELECT count(*) FROM t").fetchone()[0])
        other.close()

    t = threading.Thread(target=reader)
    t.start()
    t.join()
    assert seen == [500], seen
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.execute("VACUUM")
    db.close()
    mem = sqlite3.connect(":memory:")
    assert mem.execute("SELECT json_extract('{\"a\": 2}', '$.a')").fetchone()[0] == 2


def _serve_once(listener, reply):
    conn, _ = listener.accept()
    with conn:
        conn.sendall(reply + conn.recv(64))


def _sockets(work, tcp_address=None):
    if tcp_address is None:  # a listener of our own on loopback
        listener = socket.create_server(("127.0.0.1", 0))
        tcp_address = listener.getsockname()
        threading.Thread(target=_serve_once, args=(listener, b"echo:"), daemon=True).start()
    with socket.create_connection(tcp_address, timeout=10) as conn:
        conn.sendall(b"ping")
        got = b""
        while len(got) < 9:
            chunk = conn.recv(64)
            if not chunk:
                break
            got += chunk
        assert got.endswith(b"ping"), got
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender.sendto(b"datagram", udp.getsockname())
    udp.settimeout(10)
    assert udp.recvfrom(64)[0] == b"datagram"
    udp.close()
    sender.close()
    if socket.has_ipv6:
        try:
            v6 = socket.create_server(("::1", 0), family=socket.AF_INET6)
        except OSError as exc:  # no ::1 on this host (not the filter: that is EPERM/ENOSYS)
            assert exc.errno not in (1, 38), exc
        else:
            threading.Thread(target=_serve_once, args=(v6, b"six:"), daemon=True).start()
            with socket.create_connection(v6.getsockname()[:2], timeout=10) as conn:
                conn.sendall(b"x")
                assert conn.recv(64).startswith(b"six:")
    a, b = socket.socketpair()
    a.sendall(b"pair")
    assert b.recv(8) == b"pair"
    path = str(work / "u.sock")
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    unix.bind(path)
    unix.listen()
    threading.Thread(target=_serve_once, args=(unix, b"unix:"), daemon=True).start()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.connect(path)
        client.sendall(b"u")
        assert client.recv(64).startswith(b"unix:")
    try:  # a name resolves through the C library (loopback only here: no DNS server)
        socket.getaddrinfo("localhost", 80, proto=socket.IPPROTO_TCP)
    except socket.gaierror:
        pass
    return tcp_address


async def _asyncio_checks(tcp_address):
    async def echo(reader, writer):
        writer.write(b"async:" + await reader.read(16))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    host, port = server.sockets[0].getsockname()[:2]
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"hi")
    await writer.drain()
    assert await reader.read(64) == b"async:hi"
    writer.close()
    server.close()
    await server.wait_closed()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-I", "-c", "print('sub')", stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    assert out.strip() == b"sub" and proc.returncode == 0
    results = await asyncio.gather(*(asyncio.sleep(0.01, result=n) for n in range(5)))
    assert results == list(range(5))
    loop = asyncio.get_running_loop()
    assert await loop.run_in_executor(None, _square, 9) == 81
    assert await asyncio.wait_for(asyncio.to_thread(_square, 3), 5) == 9


def _files_time_random(work):
    data = json.dumps({"a": [1, 2.5, None, "é"], "t": time.time()})
    src = work / "data.json"
    src.write_text(data, encoding="utf-8")
    assert json.loads(src.read_text(encoding="utf-8"))["a"][3] == "é"
    shutil.copyfile(src, work / "copy.json")
    shutil.copytree(work / "sub" if (work / "sub").exists() else work / "mk", work / "tree",
                    dirs_exist_ok=True)
    os.rename(work / "copy.json", work / "moved.json")
    os.symlink(work / "moved.json", work / "link.json")
    assert os.readlink(work / "link.json") == str(work / "moved.json")
    os.chmod(work / "moved.json", 0o600)
    os.utime(work / "moved.json", (1, 2))
    assert os.stat(work / "moved.json").st_mtime == 2
    assert sorted(p.name for p in work.iterdir())
    assert any(os.walk(work))
    with open(work / "moved.json", "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        assert m[:1] == b"{"
    with tempfile.TemporaryDirectory(dir=work) as tmp, tempfile.NamedTemporaryFile(dir=tmp) as f:
        f.write(b"x" * 1000)
        f.flush()
        os.fsync(f.fileno())
        os.truncate(f.name, 10)
        assert os.path.getsize(f.name) == 10
    fd = os.open(work / "moved.json", os.O_RDONLY)
    assert os.pread(fd, 1, 0) == b"{"
    os.close(fd)
    r, w = os.pipe()
    os.write(w, b"p")
    assert os.read(r, 1) == b"p"
    os.close(r)
    os.close(w)
    for p in ("/proc/self/status", "/proc/self/limits", "/dev/urandom"):
        with open(p, "rb") as f:
            assert f.read(16)
    assert os.cpu_count() and os.getloadavg() and os.uname().sysname == "Linux"
    assert os.sched_getaffinity(0)
    t0, m0 = time.time(), time.monotonic()
    time.sleep(0.01)
    assert time.monotonic() > m0 and time.time() >= t0 and time.process_time() >= 0
    assert time.strftime("%Y", time.gmtime(0)) == "1970"
    assert len(os.urandom(16)) == 16 and len(secrets.token_hex(8)) == 16
    assert 0 <= random.SystemRandom().random() < 1 and uuid.uuid4().version == 4
    assert hashlib.sha256(b"x").hexdigest() and hashlib.pbkdf2_hmac("sha256", b"p", b"s", 10)
    ctx = ssl.create_default_context()  # loads the system's CA certificates
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))  # its own limits: allowed
    os.nice(0)
    assert os.getpriority(os.PRIO_PROCESS, 0) >= 0
    import signal  # (a step runs in a thread: block the signal there and wait for it)
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
    signal.pthread_kill(threading.get_ident(), signal.SIGUSR1)
    assert signal.sigtimedwait({signal.SIGUSR1}, 5).si_signo == signal.SIGUSR1
    signal.pthread_sigmask(signal.SIG_SETMASK, old)
    os.kill(os.getpid(), 0)


CHECKS = [
    ("files, time and random", _files_time_random),
    ("subprocesses", _subprocesses),
    ("threads", _threads),
    ("process pool", _process_pool),
    ("sqlite", _sqlite),
    ("sockets", _sockets),
]


def workload(base=None, tcp_address=None):
    """Every check, each 'ok: <name>' or 'FAILED: <name>: <error>'."""
    work = Path(tempfile.mkdtemp(prefix="workload-", dir=base))
    (work / "mk" / "deep").mkdir(parents=True)
    (work / "mk" / "deep" / "f").write_text("f")
    report = []
    for name, check in CHECKS:
        try:
            if check is _sockets:
                tcp_address = check(work, tcp_address)
                detail = None
            else:
                detail = check(work)
            report.append(f"ok: {name}" + (f" ({detail})" if detail else ""))
        except BaseException as exc:  # noqa: BLE001 - a report, not a crash
            report.append(f"FAILED: {name}: {type(exc).__name__}: {exc}"[:300])
    try:
        asyncio.run(_asyncio_checks(tcp_address))
        report.append("ok: asyncio")
    except BaseException as exc:  # noqa: BLE001
        report.append(f"FAILED: asyncio: {type(exc).__name__}: {exc}"[:300])
    shutil.rmtree(work, ignore_errors=True)
    return report


async def run(event, step):
    return await step.do("workload", workload, timeout=5, retries={"limit": 0})
