"""What `pip install .` puts into site-packages: one import root, `omnivideo`, and its data files."""
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_wheel_installs_only_the_omnivideo_package(tmp_path):
    # the same build `pip install .` runs (setuptools from the venv: no download)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path), str(ROOT)], check=True, capture_output=True, text=True)
    wheel, = tmp_path.glob("omnivideo-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/", 1)[0] for n in names if not n.split("/", 1)[0].endswith(".dist-info")}
    assert top == {"omnivideo"}, top      # no top-level kernels/, engine/, storage/, ui/ or launcher
    assert "omnivideo/kernels/__init__.py" in names and "omnivideo/cli/main.py" in names
    assert {"omnivideo/checkpoints/synth/model.safetensors", "omnivideo/checkpoints/synth/config.json",
            "omnivideo/checkpoints/synth/tokenizer.json"} <= set(names)     # `--model synth` works installed
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "omnivideo = omnivideo.cli.main:cli" in zipfile.ZipFile(wheel).read(entry_points).decode()
