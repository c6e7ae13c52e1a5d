"""Container images for the local test bed, built from this machine's Debian packages.

No registry on the internet is reachable, so the images that the seed names
(docker.io/library/nginx:latest, docker.io/curlimages/curl:latest) are assembled here from the
installed Debian binaries plus the ELF libraries they need, packed into OCI layouts with umoci,
and pushed to the test bed's own registry, which containerd reaches through a docker.io mirror.

Builds are reproducible (fixed timestamps, sorted content, fixed ownership), so the same inputs
always give the same manifest digest, and they are cached under a key made of everything that
goes into the image.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import stat
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

log = logging.getLogger("grove.testbed.images")

# Bump whenever the builder changes what it puts into an image: it is part of the cache key.
BUILDER_VERSION = "grove-testbed-images/1"
DEFAULT_CACHE_DIR = Path("/var/cache/grove/images")
DEFAULT_REGISTRY = "10.99.0.1:5000"
TAG = "latest"

# Every timestamp in the image (file mtimes, config and history dates) is this instant, so two
# builds of the same inputs are byte-identical.
EPOCH = 1704067200  # 2024-01-01T00:00:00Z
EPOCH_ISO = datetime.fromtimestamp(EPOCH, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
BUSYBOX = "/bin/busybox"

# Debian architecture names -> OCI (GOARCH) names.
_OCI_ARCH = {
    "amd64": "amd64",
    "arm64": "arm64",
    "armhf": "arm",
    "armel": "arm",
    "i386": "386",
    "ppc64el": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
    "mips64el": "mips64le",
}

# Bookworm is merged-/usr: the host's /lib, /bin, ... are symlinks into /usr. The images use the
# same layout, so a library that ldd reports under /lib and one under /usr/lib land in one place.
_MERGED_USR = ("bin", "lib", "lib64", "sbin")

_MANIFEST_MEDIA_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
_PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


class ImageError(RuntimeError):
    """A build or push step failed; the message names the image and the step."""


@dataclass(frozen=True)
class ImageSpec:
    """What goes into one image, besides the common base (busybox, /etc files, merged /usr)."""

    name: str
    repository: str  # path in the registry, e.g. "library/nginx"
    packages: tuple[str, ...]  # Debian packages whose versions go into the cache key
    executables: tuple[str, ...]  # host ELF binaries, copied to the same path with their libraries
    files: tuple[tuple[str, str], ...] = ()  # (path in image, host path)
    generated: tuple[tuple[str, str], ...] = ()  # (path in image, text)
    dirs: tuple[tuple[str, int, int], ...] = ()  # (path in image, mode, owner uid and gid)
    cmd: tuple[str, ...] = ("sh",)
    env: tuple[str, ...] = (PATH_ENV,)
    exposed_ports: tuple[str, ...] = ()
    workdir: str = "/"
    tag: str = TAG

    @property
    def reference(self) -> str:
        return f"docker.io/{self.repository}:{self.tag}"


@dataclass(frozen=True)
class BuiltImage:
    name: str
    layout_dir: Path
    tag: str
    digest: str  # manifest digest, "sha256:..."
    reference: str  # what users write in a descriptor's `code`
    from_cache: bool = field(default=False, compare=False)

    @property
    def repository(self) -> str:
        without_tag = self.reference.rsplit(":", 1)[0]
        return without_tag.split("/", 1)[1]


# Written by the builder rather than copied from /etc/nginx: the Debian config daemonises, logs
# to files and includes sites-enabled, none of which suits a container. `daemon off` is given on
# the command line as in the official image (a second `daemon` directive in the file would make
# nginx refuse a user's `nginx -g "daemon off;"`). `error_log stderr` is nginx's own keyword for
# fd 2 and, unlike /dev/stderr, needs no open() that fails when stderr is a socket.
NGINX_CONF = """\
user www-data;
worker_processes 1;
pid /run/nginx.pid;
error_log stderr notice;

events {
    worker_connections 1024;
}

http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log /dev/stdout;
    sendfile on;
    keepalive_timeout 65;

    server {
        listen 80;
        server_name localhost;
        root /usr/share/nginx/html;
        index index.html index.htm;
    }
}
"""

WWW_DATA = 33
_USERS = """\
root:x:0:0:root:/root:/bin/sh
www-data:x:33:33:www-data:/var/www:/bin/false
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
"""
_GROUPS = """\
root:x:0:
www-data:x:33:
nogroup:x:65534:
nobody:x:65534:
"""
_NSSWITCH = "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n"
_HOSTS = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"

IMAGES: dict[str, ImageSpec] = {
    "nginx": ImageSpec(
        name="nginx",
        repository="library/nginx",
        packages=("nginx-light", "nginx-common", "busybox-static", "libc6"),
        executables=("/usr/sbin/nginx",),
        files=(
            ("/etc/nginx/mime.types", "/etc/nginx/mime.types"),
            ("/usr/share/nginx/html/index.html", "/usr/share/nginx/html/index.html"),
        ),
        generated=(("/etc/nginx/nginx.conf", NGINX_CONF),),
        dirs=(
            ("/var/log/nginx", 0o755, 0),
            ("/var/lib/nginx", 0o755, 0),
            # Owned by the worker user already, so the master needs no CAP_CHOWN at start.
            ("/var/lib/nginx/body", 0o700, WWW_DATA),
            ("/var/lib/nginx/fastcgi", 0o700, WWW_DATA),
            ("/var/lib/nginx/proxy", 0o700, WWW_DATA),
            ("/var/lib/nginx/scgi", 0o700, WWW_DATA),
            ("/var/lib/nginx/uwsgi", 0o700, WWW_DATA),
            ("/var/www", 0o755, 0),
        ),
        cmd=("nginx", "-g", "daemon off;"),
        exposed_ports=("80/tcp",),
    ),
    "curl": ImageSpec(
        name="curl",
        repository="curlimages/curl",
        packages=("curl", "libcurl4", "busybox-static", "libc6"),
        executables=("/usr/bin/curl",),
        cmd=("sh",),
    ),
}


# ---------------------------------------------------------------- running tools


def _run(argv: list[str], what: str, env: Mapping[str, str] | None = None) -> str:
    log.debug("run %s", argv)
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, check=False, env=env)
    except FileNotFoundError as exc:
        raise ImageError(f"{what}: {argv[0]} is not installed ({exc})") from exc
    if proc.returncode != 0:
        raise ImageError(
            f"{what}: {' '.join(argv)} exited {proc.returncode}\n"
            f"stdout: {proc.stdout.strip()}\nstderr: {proc.stderr.strip()}"
        )
    return proc.stdout


def _env_without_proxies() -> dict[str, str]:
    # The registry is always on this machine or a test namespace; a proxy from the environment
    # would send its traffic elsewhere.
    return {k: v for k, v in os.environ.items() if k not in _PROXY_VARS}


def oci_architecture() -> str:
    deb_arch = _run(["dpkg", "--print-architecture"], "architecture").strip()
    try:
        return _OCI_ARCH[deb_arch]
    except KeyError:
        raise ImageError(f"architecture: no OCI name known for Debian architecture {deb_arch!r}") from None


def package_versions(packages: Iterable[str]) -> dict[str, str]:
    names = sorted(set(packages))
    proc = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Package}\t${Status}\t${Version}\n", *names],
        capture_output=True,
        text=True,
        check=False,
    )
    versions: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        pkg, status, version = line.split("\t")
        if status.endswith(" installed"):
            versions[pkg.split(":")[0]] = version
    missing = [n for n in names if n not in versions]
    if missing:
        raise ImageError(
            f"packages: {', '.join(missing)} not installed; run: apt-get install {' '.join(missing)}"
        )
    return versions


# ---------------------------------------------------------------- what goes into the image


@dataclass(frozen=True)
class _Entry:
    path: str  # absolute path in the image, merged-/usr canonical
    kind: str  # "dir" | "file" | "symlink"
    mode: int = 0o755
    owner: int = 0  # uid and gid
    source: str | None = None
    data: bytes | None = None
    target: str | None = None

    def content(self) -> bytes:
        if self.data is not None:
            return self.data
        assert self.source is not None
        return Path(self.source).read_bytes()


def _canonical(path: str) -> str:
    parts = Path(path).parts
    if len(parts) > 1 and parts[1] in _MERGED_USR:
        return str(Path("/usr", *parts[1:]))
    return str(Path(path))


def elf_closure(executable: str) -> list[str]:
    """Host paths of the shared libraries and the loader that `executable` needs, as ldd names them."""
    out = _run(["ldd", executable], f"libraries of {executable}")
    paths: list[str] = []
    for raw in out.splitlines():
        line = raw.strip()
        if "not found" in line:
            raise ImageError(f"libraries of {executable}: {line}")
        if "=>" in line:
            target = line.split("=>", 1)[1].strip().split(" (", 1)[0].strip()
        else:
            target = line.split(" (", 1)[0].strip()
        # linux-vdso and friends have no file: the kernel maps them.
        if target.startswith("/"):
            paths.append(target)
    return paths


def _busybox_applets() -> list[str]:
    out = _run([BUSYBOX, "--list"], "busybox applets")
    return sorted({a for a in out.split() if a and "/" not in a and a != "busybox"})


def _base_entries() -> list[_Entry]:
    entries = [_Entry(f"/{d}", "symlink", 0o777, target=f"usr/{d}") for d in _MERGED_USR]
    entries += [
        _Entry("/usr/bin/busybox", "file", 0o755, source=BUSYBOX),
        _Entry("/etc/passwd", "file", 0o644, data=_USERS.encode()),
        _Entry("/etc/group", "file", 0o644, data=_GROUPS.encode()),
        _Entry("/etc/nsswitch.conf", "file", 0o644, data=_NSSWITCH.encode()),
        _Entry("/etc/hosts", "file", 0o644, data=_HOSTS.encode()),
        _Entry("/tmp", "dir", 0o1777),  # noqa: S108 - a path inside the image
        _Entry("/root", "dir", 0o700),
        _Entry("/run", "dir", 0o755),
        _Entry("/proc", "dir", 0o555),
        _Entry("/sys", "dir", 0o555),
        _Entry("/dev", "dir", 0o755),
        _Entry("/var/tmp", "dir", 0o1777),  # noqa: S108 - a path inside the image
    ]
    return entries


def plan(spec: ImageSpec) -> list[_Entry]:
    """Every path of the image's root file system, parents first, in a fixed order."""
    by_path: dict[str, _Entry] = {}

    def add(entry: _Entry) -> None:
        old = by_path.get(entry.path)
        if old is not None and old != entry:
            raise ImageError(f"image {spec.name}: two different contents for {entry.path}")
        by_path[entry.path] = entry

    for entry in _base_entries():
        add(entry)
    for exe in spec.executables:
        add(_Entry(_canonical(exe), "file", stat.S_IMODE(os.stat(exe).st_mode), source=exe))
        for lib in elf_closure(exe):
            real = os.path.realpath(lib)
            add(_Entry(_canonical(lib), "file", stat.S_IMODE(os.stat(real).st_mode), source=real))
    for dest, src in spec.files:
        add(_Entry(_canonical(dest), "file", 0o644, source=src))
    for dest, text in spec.generated:
        add(_Entry(_canonical(dest), "file", 0o644, data=text.encode()))
    for dest, mode, owner in spec.dirs:
        add(_Entry(_canonical(dest), "dir", mode, owner))
    for applet in _busybox_applets():
        path = f"/usr/bin/{applet}"
        if path not in by_path and f"/usr/sbin/{applet}" not in by_path:
            add(_Entry(path, "symlink", 0o777, target="busybox"))

    # Parents that nothing declared get the usual 0755.
    for path in list(by_path):
        for parent in Path(path).parents:
            if str(parent) != "/" and str(parent) not in by_path:
                by_path[str(parent)] = _Entry(str(parent), "dir", 0o755)
    return [by_path[p] for p in sorted(by_path, key=lambda p: Path(p).parts)]


def cache_key(spec: ImageSpec, entries: list[_Entry], arch: str) -> str:
    h = hashlib.sha256()
    head = {
        "builder": BUILDER_VERSION,
        "arch": arch,
        "epoch": EPOCH,
        "packages": package_versions(spec.packages),
        "config": [spec.repository, spec.tag, spec.cmd, spec.env, spec.exposed_ports, spec.workdir],
    }
    h.update(json.dumps(head, sort_keys=True).encode())
    for e in entries:
        digest = hashlib.sha256(e.content()).hexdigest() if e.kind == "file" else ""
        h.update(f"\n{e.kind}\t{e.path}\t{e.mode:o}\t{e.owner}\t{e.target or ''}\t{digest}".encode())
    return h.hexdigest()


def _materialise(rootfs: Path, entries: list[_Entry]) -> None:
    for e in entries:
        dest = rootfs / e.path.lstrip("/")
        if e.kind == "dir":
            dest.mkdir(exist_ok=True)
            os.chmod(dest, e.mode)
        elif e.kind == "symlink":
            assert e.target is not None
            os.symlink(e.target, dest)
        else:
            if e.source is not None:
                shutil.copyfile(e.source, dest)
            else:
                dest.write_bytes(e.content())
            os.chmod(dest, e.mode)
        os.lchown(dest, e.owner, e.owner)
    _normalise_times(rootfs)


def _normalise_times(rootfs: Path) -> None:
    # Bottom-up, because creating a child bumps its parent's mtime.
    for dirpath, dirnames, filenames in os.walk(rootfs, topdown=False):
        for name in dirnames + filenames:
            os.utime(os.path.join(dirpath, name), (EPOCH, EPOCH), follow_symlinks=False)
    os.chmod(rootfs, 0o755)  # noqa: S103 - the image's / must be readable by its non-root users
    os.utime(rootfs, (EPOCH, EPOCH))


# ---------------------------------------------------------------- building


def _umoci_config_args(spec: ImageSpec, arch: str) -> list[str]:
    args = [
        "--no-history",
        f"--created={EPOCH_ISO}",
        f"--architecture={arch}",
        "--os=linux",
        f"--config.workingdir={spec.workdir}",
        "--clear=config.cmd",
        "--clear=config.entrypoint",
        "--clear=config.env",
        "--clear=config.exposedports",
    ]
    args += [f"--config.cmd={c}" for c in spec.cmd]
    args += [f"--config.env={e}" for e in spec.env]
    args += [f"--config.exposedports={p}" for p in spec.exposed_ports]
    return args


def manifest_digest(layout: Path, tag: str) -> str:
    index = json.loads((layout / "index.json").read_text())
    for m in index.get("manifests", []):
        if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag:
            return m["digest"]
    raise ImageError(f"layout {layout}: no manifest tagged {tag!r}")


def _build_layout(spec: ImageSpec, entries: list[_Entry], arch: str, workdir: Path) -> Path:
    layout, bundle = workdir / "oci", workdir / "bundle"
    image = f"{layout}:{spec.tag}"
    what = f"image {spec.name}"
    _run(["umoci", "init", "--layout", str(layout)], f"{what}: umoci init")
    _run(["umoci", "new", "--image", image], f"{what}: umoci new")
    _run(["umoci", "unpack", "--image", image, str(bundle)], f"{what}: umoci unpack")
    _materialise(bundle / "rootfs", entries)
    _run(
        [
            "umoci", "repack", "--image", image,
            f"--history.created={EPOCH_ISO}",
            f"--history.created_by=grove testbed image builder ({BUILDER_VERSION})",
            f"--history.comment=Debian packages: {' '.join(sorted(spec.packages))}",
            str(bundle),
        ],
        f"{what}: umoci repack",
    )  # fmt: skip
    _run(["umoci", "config", "--image", image, *_umoci_config_args(spec, arch)], f"{what}: umoci config")
    # `umoci new` and each config step leave superseded blobs behind.
    _run(["umoci", "gc", "--layout", str(layout)], f"{what}: umoci gc")
    shutil.rmtree(bundle)
    return layout


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    # Two test runs (or the lead's test bed and a test) may build into the same cache at once.
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _load_cached(entry_dir: Path) -> BuiltImage | None:
    meta = entry_dir / "built.json"
    if not meta.is_file():
        return None
    d = json.loads(meta.read_text())
    blob = entry_dir / "oci" / "blobs" / "sha256" / d["digest"].split(":", 1)[1]
    if not blob.is_file():
        # Someone pruned the layout by hand: treat as absent and rebuild in its place.
        log.warning("image %s: cache entry %s lacks its manifest, rebuilding", d["name"], entry_dir)
        shutil.rmtree(entry_dir, ignore_errors=True)
        return None
    return BuiltImage(
        name=d["name"],
        layout_dir=entry_dir / "oci",
        tag=d["tag"],
        digest=d["digest"],
        reference=d["reference"],
        from_cache=True,
    )


def build_image(spec: ImageSpec, cache_dir: Path | str = DEFAULT_CACHE_DIR) -> BuiltImage:
    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    arch = oci_architecture()
    entries = plan(spec)
    key = cache_key(spec, entries, arch)
    entry_dir = cache / f"{spec.name}-{key[:24]}"

    cached = _load_cached(entry_dir)
    if cached is None:
        with _locked(cache / f".{spec.name}.lock"):
            cached = _load_cached(entry_dir)
            if cached is None:
                return _build_into_cache(
                    spec, entries, arch=arch, cache=cache, entry_dir=entry_dir, started=started
                )
    log.info("image %s: cache hit %s (%s) in %.2fs", spec.name, cached.digest, entry_dir, _since(started))
    return cached


def _build_into_cache(
    spec: ImageSpec, entries: list[_Entry], *, arch: str, cache: Path, entry_dir: Path, started: float
) -> BuiltImage:
    log.info("image %s: building %d paths into %s", spec.name, len(entries), entry_dir)
    # Work dirs of builders that were killed; a live builder of this image would hold our lock.
    for leftover in cache.glob(f".{spec.name}-build-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    work = Path(tempfile.mkdtemp(prefix=f".{spec.name}-build-", dir=cache))
    try:
        layout = _build_layout(spec, entries, arch, work)
        digest = manifest_digest(layout, spec.tag)
        meta = {"name": spec.name, "tag": spec.tag, "digest": digest, "reference": spec.reference}
        (work / "built.json").write_text(json.dumps(meta, indent=2) + "\n")
        # Left over from a hand-pruned entry; nobody else writes here while we hold the lock.
        shutil.rmtree(entry_dir, ignore_errors=True)
        # The rename publishes the finished entry in one step: a reader sees all or nothing.
        os.rename(work, entry_dir)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    for stale in cache.glob(f"{spec.name}-*"):
        if stale != entry_dir and stale.is_dir():
            log.info("image %s: removing stale cache entry %s", spec.name, stale)
            shutil.rmtree(stale, ignore_errors=True)
    log.info("image %s: built %s in %.2fs", spec.name, digest, _since(started))
    return BuiltImage(spec.name, entry_dir / "oci", spec.tag, digest, spec.reference)


def _since(t0: float) -> float:
    return time.monotonic() - t0


def build_images(
    cache_dir: Path | str = DEFAULT_CACHE_DIR, names: Iterable[str] | None = None
) -> dict[str, BuiltImage]:
    wanted = list(IMAGES) if names is None else list(names)
    unknown = [n for n in wanted if n not in IMAGES]
    if unknown:
        raise ImageError(f"unknown image(s) {', '.join(unknown)}; known: {', '.join(IMAGES)}")
    return {n: build_image(IMAGES[n], cache_dir) for n in wanted}


# ---------------------------------------------------------------- publishing


def remote_digest(registry: str, repository: str, tag: str, timeout: float = 10.0) -> str | None:
    """The manifest digest the registry holds for repository:tag, or None if it has none."""
    url = f"http://{registry}/v2/{repository}/manifests/{tag}"
    req = urllib.request.Request(url, method="HEAD", headers={"Accept": ", ".join(_MANIFEST_MEDIA_TYPES)})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=timeout) as resp:
            return resp.headers.get("Docker-Content-Digest")
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise ImageError(f"registry {registry}: HEAD {url} answered {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise ImageError(f"registry {registry}: cannot reach {url}: {exc}") from exc


def push_image(image: BuiltImage, registry: str = DEFAULT_REGISTRY) -> bool:
    """Push one image unless the registry already has its digest; True if it pushed."""
    dest = f"{registry}/{image.repository}:{image.tag}"
    if remote_digest(registry, image.repository, image.tag) == image.digest:
        log.info("image %s: %s already has %s, skipping push", image.name, dest, image.digest)
        return False
    started = time.monotonic()
    # --insecure-policy: the source is a layout this process just built, so no signature policy
    # applies; without it skopeo depends on whatever /etc/containers/policy.json the host has.
    _run(
        [
            "skopeo", "--insecure-policy", "copy", "--quiet", "--preserve-digests",
            "--dest-tls-verify=false",
            f"oci:{image.layout_dir}:{image.tag}", f"docker://{dest}",
        ],
        f"image {image.name}: push to {dest}",
        env=_env_without_proxies(),
    )  # fmt: skip
    pushed = remote_digest(registry, image.repository, image.tag)
    if pushed != image.digest:
        raise ImageError(f"image {image.name}: {dest} holds {pushed} after push, expected {image.digest}")
    log.info("image %s: pushed %s as %s in %.2fs", image.name, image.digest, dest, _since(started))
    return True


def push_images(
    built: Mapping[str, BuiltImage] | Iterable[BuiltImage], registry: str = DEFAULT_REGISTRY
) -> None:
    images = built.values() if isinstance(built, Mapping) else built
    for image in images:
        push_image(image, registry)
