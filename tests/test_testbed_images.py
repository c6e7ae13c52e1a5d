"""The test bed's images: reproducible builds, the cache, the registry push, and real runs.

The run tests unpack an image into a runtime bundle and start it with runc inside a network
namespace made here, then talk to it through that namespace only.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import socket
import struct
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from grove.testbed import bed, images
from grove.testbed.images import IMAGES, BuiltImage, build_images, push_image, push_images, remote_digest

pytestmark = [
    pytest.mark.testbed,
    # Namespaces and containers of their own: no other run may take them for its leftovers.
    pytest.mark.usefixtures("machine_lock"),
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (umoci unpack, runc, netns)"),
    pytest.mark.skipif(
        missing := [
            t
            for t in ("umoci", "skopeo", "runc", "docker-registry", "nsenter", "ip", "curl")
            if shutil.which(t) is None
        ],
        reason=f"missing tools: {missing}",
    ),
]

PREFIX = f"grovet-img-{os.getpid()}"
# What containerd gives a container by default; umoci's generated spec keeps only three
# capabilities, too few for nginx to switch its worker to www-data.
CONTAINERD_CAPS = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
]  # fmt: skip


def poll(predicate: Callable[[], object], *, timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("image-cache")


@pytest.fixture(scope="module")
def built(cache_dir: Path) -> dict[str, BuiltImage]:
    started = time.monotonic()
    result = build_images(cache_dir=cache_dir)
    print(f"cold build of {sorted(result)}: {time.monotonic() - started:.2f}s")
    return result


def _blob(layout: Path, digest: str) -> dict:
    return json.loads((layout / "blobs" / "sha256" / digest.split(":", 1)[1]).read_text())


def _image_config(image: BuiltImage) -> dict:
    manifest = _blob(image.layout_dir, image.digest)
    return _blob(image.layout_dir, manifest["config"]["digest"])


def test_builds_both_images_with_seed_references(built: dict[str, BuiltImage]) -> None:
    assert set(built) == {"nginx", "curl"}
    assert built["nginx"].reference == "docker.io/library/nginx:latest"
    assert built["curl"].reference == "docker.io/curlimages/curl:latest"
    for image in built.values():
        assert image.digest.startswith("sha256:")
        assert images.manifest_digest(image.layout_dir, image.tag) == image.digest
        assert not image.from_cache


def test_image_configs(built: dict[str, BuiltImage]) -> None:
    nginx, curl = _image_config(built["nginx"]), _image_config(built["curl"])
    assert nginx["config"]["Cmd"] == ["nginx", "-g", "daemon off;"]
    assert nginx["config"]["ExposedPorts"] == {"80/tcp": {}}
    assert curl["config"]["Cmd"] == ["sh"]
    for cfg in (nginx, curl):
        assert cfg["architecture"] == images.oci_architecture()
        assert cfg["os"] == "linux"
        assert cfg["created"] == images.EPOCH_ISO
        assert images.PATH_ENV in cfg["config"]["Env"]
        assert all(h["created"] == images.EPOCH_ISO for h in cfg["history"])


def test_second_build_with_same_inputs_is_a_cache_hit(built: dict[str, BuiltImage], cache_dir: Path) -> None:
    started = time.monotonic()
    again = build_images(cache_dir=cache_dir)
    elapsed = time.monotonic() - started
    print(f"warm build: {elapsed:.2f}s")
    assert again == built
    assert all(image.from_cache for image in again.values())


def test_rebuild_in_fresh_cache_gives_identical_digests(built: dict[str, BuiltImage], tmp_path: Path) -> None:
    # A cold build takes about a second per image here, so a full second build is affordable.
    rebuilt = build_images(cache_dir=tmp_path)
    assert {n: i.digest for n, i in rebuilt.items()} == {n: i.digest for n, i in built.items()}
    assert not any(image.from_cache for image in rebuilt.values())


def test_changed_content_changes_key_and_digest(built: dict[str, BuiltImage], tmp_path: Path) -> None:
    spec = IMAGES["curl"]
    changed = dataclasses.replace(spec, generated=(("/etc/grove-marker", "x\n"),))
    image = images.build_image(changed, cache_dir=tmp_path)
    assert image.digest != built["curl"].digest
    assert not image.from_cache


def _elf_interpreter(path: str) -> str:
    data = Path(path).read_bytes()
    assert data[:4] == b"\x7fELF"
    wide, order = data[4] == 2, "<" if data[5] == 1 else ">"
    phoff, phentsize, phnum = (
        (struct.unpack_from(order + "Q", data, 32)[0], *struct.unpack_from(order + "HH", data, 54))
        if wide
        else (struct.unpack_from(order + "I", data, 28)[0], *struct.unpack_from(order + "HH", data, 42))
    )
    for index in range(phnum):
        header = phoff + index * phentsize
        if struct.unpack_from(order + "I", data, header)[0] == 3:  # PT_INTERP
            # p_offset, p_vaddr, p_paddr, p_filesz follow p_type (and, in 64-bit files, p_flags).
            fields = order + ("QQQQ" if wide else "IIII")
            offset, size = struct.unpack_from(fields, data, header + (8 if wide else 4))[::3]
            return data[offset : offset + size].rstrip(b"\0").decode()
    raise AssertionError(f"{path} names no ELF interpreter")


def test_image_carries_elf_closure(built: dict[str, BuiltImage]) -> None:
    entries = {e.path for e in images.plan(IMAGES["curl"])}
    for lib in images.elf_closure("/usr/bin/curl"):
        assert images._canonical(lib) in entries
    # The loader the kernel starts curl with (its PT_INTERP), read from the ELF file, not from ldd.
    assert images._canonical(_elf_interpreter("/usr/bin/curl")) in entries
    assert {"/usr/bin/sh", "/usr/bin/tail", "/usr/bin/busybox"} <= entries


# ---------------------------------------------------------------- registry


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"127.0.0.1:{port}"
    config = tmp_path / "registry.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: warn\n"
        f"storage:\n  filesystem:\n    rootdirectory: {tmp_path / 'storage'}\n"
        f"http:\n  addr: {address}\n"
    )
    log = (tmp_path / "registry.log").open("wb")
    proc = subprocess.Popen(
        ["docker-registry", "serve", str(config)], stdout=log, stderr=log, stdin=subprocess.DEVNULL
    )
    try:
        poll(lambda: proc.poll() is not None or _registry_answers(address), timeout=20, what="registry")
        assert proc.poll() is None, (tmp_path / "registry.log").read_text()
        yield address
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _registry_answers(address: str) -> bool:
    try:
        with socket.create_connection(tuple(address.split(":")), timeout=1):  # type: ignore[arg-type]
            return True
    except OSError:
        return False


def test_push_then_skip_when_registry_has_digest(built: dict[str, BuiltImage], registry: str) -> None:
    assert remote_digest(registry, "library/nginx", "latest") is None
    push_images(built, registry)
    for image in built.values():
        assert remote_digest(registry, image.repository, image.tag) == image.digest
        out = subprocess.run(
            ["skopeo", "inspect", "--tls-verify=false", f"docker://{registry}/{image.repository}:{image.tag}"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        assert json.loads(out.stdout)["Digest"] == image.digest
    assert [push_image(image, registry) for image in built.values()] == [False, False]


# ---------------------------------------------------------------- running the images


@pytest.fixture
def netns() -> Iterator[str]:
    name = f"{PREFIX}-ns"
    made_netns_dir = not bed.netns_dir_mounted()
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)
        if made_netns_dir:
            bed.release_netns_dir()


class Runc:
    """Containers started from unpacked images, removed again at teardown."""

    def __init__(self, workdir: Path, netns: str) -> None:
        self.workdir, self.netns = workdir, netns
        self.root = workdir / "runc-state"
        self.ids: list[str] = []

    def bundle(self, image: BuiltImage, args: list[str] | None = None) -> Path:
        bundle = self.workdir / f"bundle-{image.name}"
        subprocess.run(
            ["umoci", "unpack", "--image", f"{image.layout_dir}:{image.tag}", str(bundle)],
            check=True, capture_output=True,
        )  # fmt: skip
        spec = json.loads((bundle / "config.json").read_text())
        spec["process"]["terminal"] = False
        if args is not None:
            spec["process"]["args"] = args
        caps = spec["process"]["capabilities"]
        for kind in ("bounding", "effective", "permitted"):
            caps[kind] = CONTAINERD_CAPS
        caps.pop("ambient", None)
        caps.pop("inheritable", None)
        for ns in spec["linux"]["namespaces"]:
            if ns["type"] == "network":
                ns["path"] = f"/var/run/netns/{self.netns}"
        (bundle / "config.json").write_text(json.dumps(spec))
        return bundle

    def start(self, image: BuiltImage, args: list[str] | None = None) -> tuple[str, Path]:
        cid = f"{PREFIX}-{image.name}"
        bundle = self.bundle(image, args)
        out = self.workdir / f"{image.name}.out"
        self.ids.append(cid)
        with out.open("wb") as fh:
            subprocess.run(
                ["runc", "--root", str(self.root), "run", "-d", "--bundle", str(bundle), cid],
                stdin=subprocess.DEVNULL, stdout=fh, stderr=fh, check=True, timeout=60,
            )  # fmt: skip
        return cid, out

    def exec(self, cid: str, args: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["runc", "--root", str(self.root), "exec", cid, *args],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

    def state(self, cid: str) -> str:
        proc = subprocess.run(
            ["runc", "--root", str(self.root), "state", cid], capture_output=True, text=True, check=False
        )
        return json.loads(proc.stdout)["status"] if proc.returncode == 0 else "absent"

    def cleanup(self) -> None:
        for cid in self.ids:
            subprocess.run(
                ["runc", "--root", str(self.root), "kill", cid, "KILL"], check=False, capture_output=True
            )
            subprocess.run(
                ["runc", "--root", str(self.root), "delete", "--force", cid], check=False, capture_output=True
            )


@pytest.fixture
def runc(tmp_path: Path, netns: str) -> Iterator[Runc]:
    r = Runc(tmp_path, netns)
    try:
        yield r
    finally:
        r.cleanup()


def _fetch_in_netns(netns: str, url: str) -> str:
    proc = subprocess.run(
        ["nsenter", f"--net=/var/run/netns/{netns}", "curl", "-sf", "--max-time", "2", url],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    return proc.stdout if proc.returncode == 0 else ""


def test_nginx_serves_welcome_page_and_curl_image_fetches_it(
    built: dict[str, BuiltImage], runc: Runc, netns: str
) -> None:
    nginx_id, nginx_out = runc.start(built["nginx"])
    page = poll(
        lambda: runc.state(nginx_id) != "running" or _fetch_in_netns(netns, "http://127.0.0.1:80/"),
        timeout=30,
        what="nginx to answer on port 80",
    )
    assert isinstance(page, str), f"nginx stopped: {nginx_out.read_text()}"
    assert "Welcome to nginx!" in page
    # access_log /dev/stdout: the request shows up in the container's output.
    poll(lambda: "GET / HTTP" in nginx_out.read_text(), timeout=10, what="nginx access log line")
    ps = runc.exec(nginx_id, ["ps"])
    assert ps.returncode == 0, ps.stderr
    assert "nginx: worker process" in ps.stdout

    # The seed's client: the curl image idles with `sh -c "tail -f /dev/null"` and curl is exec'd.
    curl_id, curl_out = runc.start(built["curl"], ["sh", "-c", "tail -f /dev/null"])
    poll(lambda: runc.state(curl_id) == "running", timeout=10, what="curl container running")
    version = runc.exec(curl_id, ["curl", "--version"])
    assert version.returncode == 0, version.stderr
    assert version.stdout.startswith("curl ")
    fetched = runc.exec(curl_id, ["curl", "-sf", "http://127.0.0.1:80/"])
    assert fetched.returncode == 0, (fetched.stderr, curl_out.read_text())
    assert "Welcome to nginx!" in fetched.stdout
