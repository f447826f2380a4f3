"""The web package must never pull in torch, torchvision or the pipeline (design: app/ stays small)."""

import subprocess
import sys

FORBIDDEN = ("torch", "torchvision", "pipeline", "captum")


def test_importing_app_loads_no_torch_and_no_pipeline() -> None:
    code = (
        "import sys, pkgutil, importlib, app\n"
        "for m in pkgutil.walk_packages(app.__path__, 'app.'):\n"
        "    importlib.import_module(m.name)\n"
        f"bad = sorted(n for n in sys.modules if n.split('.')[0] in {FORBIDDEN!r})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"app imported: {out.stdout.strip()}"


def test_the_command_line_starts_without_torch() -> None:
    """`fieldmark --help` must work in the web image, which has no torch."""
    code = "import sys; import fieldmark.cli; print(','.join(n for n in sys.modules if n.startswith('torch')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
