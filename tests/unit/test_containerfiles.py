"""One definition per image: the checked-in Containerfiles are exactly what the image
definitions (dev/tenantflow_dev/devcluster/imagedefs.py) generate, and read as an OCI
builder reads them they give the images the dev node's builder (images.py) builds."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tenantflow.errors import DevClusterError
from tenantflow_dev.devcluster import containerfiles, imagedefs, images

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
WITH_CONTAINERFILE = [i.name for i in imagedefs.IMAGES if i.containerfile is not None]


def test_checked_in_containerfiles_match_the_image_definitions() -> None:
    assert containerfiles.main(["--check"]) == 0, (
        "a Containerfile drifted from imagedefs.py: run `make containerfiles`"
    )


def test_drift_is_detected(tmp_path: Path) -> None:
    assert containerfiles.main(["--root", str(tmp_path)]) == 0
    assert containerfiles.main(["--root", str(tmp_path), "--check"]) == 0
    victim = tmp_path / "operator" / "Containerfile"
    victim.write_text(victim.read_text().replace("USER 10001:10001", "USER 0:0"))
    assert containerfiles.main(["--root", str(tmp_path), "--check"]) == 1


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    joined = re.sub(
        r"\\\n", " ", "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    )
    out = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _as_built(name: str) -> dict[str, Any]:
    """What the checked-in Containerfile of `name` gives its final stage: its runtime
    config (a `FROM` of another of our images keeps that image's, as builders do), the
    Debian packages it installs and where it puts Python packages."""
    path = imagedefs.image(name).containerfile
    assert path is not None
    built: dict[str, Any] = {}
    args: dict[str, str] = {}
    for word, rest in _instructions((ROOT / path).read_text()):
        if word == "ARG":
            key, _, value = rest.partition("=")
            args[key] = value
        elif word == "FROM":
            ref = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], rest.split(" AS ")[0])
            base = ref.removeprefix(f"{imagedefs.PUBLISHED}/").rsplit(":", 1)[0]
            if ref.startswith(imagedefs.PUBLISHED):
                built = {**_as_built(base), "site": []}
            else:  # Debian: its own PATH, root, working directory /
                built = {"User": "0:0", "Env": [], "Entrypoint": None, "Cmd": None}
                built |= {"WorkingDir": "/", "packages": [], "site": []}
        elif word == "USER":
            built["User"] = rest
        elif word == "ENV":
            built["Env"] = [*built["Env"], *rest.split()]
        elif word == "WORKDIR":
            built["WorkingDir"] = rest
        elif word == "ENTRYPOINT":
            built["Entrypoint"], built["Cmd"] = json.loads(rest), None
        elif word == "CMD":
            built["Cmd"] = json.loads(rest)
        elif word == "RUN" and "apt-get install" in rest:
            found = re.search(r"--no-install-recommends ([\w .+-]+?)(?: &&|$)", rest)
            assert found is not None, rest
            built["packages"] = found.group(1).split()
        elif word == "COPY":
            built["site"] = [*built["site"], rest.split()[-1].strip("/")]
    return built


@pytest.mark.parametrize("name", WITH_CONTAINERFILE)
def test_the_builder_builds_what_the_containerfile_says(name: str) -> None:
    _, config = images.definitions()[name]
    built = _as_built(name)
    path = f"PATH={imagedefs.PATH}"  # Debian's images set it; the builder writes it
    assert config["Env"] == [path, *built["Env"]]
    for key in ("User", "Entrypoint", "WorkingDir"):
        assert config[key] == built[key], key
    assert config["Cmd"] == (built["Cmd"] or []), "Cmd"
    assert built["packages"] == list(imagedefs.DEBIAN_PACKAGES)
    assert set(built["site"]) <= {imagedefs.SITE}, built["site"]


def test_the_builder_and_the_wheel_ship_the_same_files() -> None:
    """Everything in the package directory ships (a module, or pyproject's package-data):
    the dev tooling lives in tenantflow_dev, outside it, so neither the wheel nor an image
    can carry it, and the builder's app layer holds what the wheel does."""
    every = {
        p
        for p in images.PACKAGE_DIR.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    }
    assert set(images.shipped_files()) == every
    assert not (images.PACKAGE_DIR / "testing" / "devcluster").exists()


def test_the_sandbox_images_carry_deno_at_the_typescript_extras_pin() -> None:
    """Deno (TypeScript/JavaScript workflows) is in every sandbox image, not the operator's,
    at pyproject.toml's exact pin, by the builder and by the Containerfile alike."""
    pins = images.typescript_requirements()
    assert len(pins) == 1 and re.fullmatch(r"deno==[\w.]+", pins[0]), pins
    for name in ("sandbox", "sandbox-example"):
        assert "typescript" in imagedefs.runtime(name).layers, name
    assert "typescript" not in imagedefs.runtime("operator").layers
    text = (ROOT / "sandbox-image" / "Containerfile").read_text()
    assert f"--target /site {pins[0]}" in text
    assert f"COPY --from=typescript /site /{imagedefs.SITE}/" in text


def test_a_pip_image_layer_keeps_only_the_binaries_a_package_runs(tmp_path: Path) -> None:
    """`deno.find_deno_bin()` runs SITE/bin/deno of a `--target` tree: that one stays, mode
    755 for the non-root worker; console scripts (a host path in their #!) go."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "deno").write_bytes(b"\x7fELF")
    (bin_dir / "deno").chmod(0o600)
    (bin_dir / "console-script").write_text("#!/host/venv/bin/python\n")
    images._keep_binaries(bin_dir, ("deno",), "typescript")
    assert [p.name for p in bin_dir.iterdir()] == ["deno"]
    assert (bin_dir / "deno").stat().st_mode & 0o777 == 0o755
    with pytest.raises(DevClusterError, match="no bin/node"):
        images._keep_binaries(bin_dir, ("node",), "other")
    images._keep_binaries(bin_dir, (), "deps")
    assert not bin_dir.exists()
