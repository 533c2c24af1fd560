"""The package as a user installs it: a wheel built from the repository, installed
with requirements.lock into a new virtual environment, run from outside the
checkout through its console scripts (slow: installs TensorFlow; run with --slow)."""

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from cli_helpers import read_eval_results, write_tiny_setup
from conftest import PROJECT_ROOT

CONSOLE_SCRIPTS = ("bert-run-classifier", "bert-run-squad", "bert-extract-features",
                   "bert-convert-checkpoint", "bert-export-model", "bert-predict",
                   "bert-fetch")


def _run(cmd, cwd, env, timeout=900):
  result = subprocess.run([str(c) for c in cmd], cwd=str(cwd), env=env,
                          capture_output=True, text=True, timeout=timeout)
  assert result.returncode == 0, (f"{' '.join(map(str, cmd))} failed "
                                  f"({result.returncode}):\n{result.stdout[-3000:]}\n"
                                  f"{result.stderr[-6000:]}")
  return result


def _copy_sources(destination: Path) -> Path:
  """The repository's tracked files (what a clone holds), without any build output."""
  if (PROJECT_ROOT / ".git").exists():
    names = subprocess.run(["git", "ls-files", "-z"], cwd=PROJECT_ROOT, check=True,
                           capture_output=True).stdout.decode().split("\0")
    for name in filter(None, names):
      if (PROJECT_ROOT / name).is_file():
        (destination / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(PROJECT_ROOT / name, destination / name)
  else:
    shutil.copytree(PROJECT_ROOT, destination, dirs_exist_ok=True, ignore=(
        shutil.ignore_patterns(".venv*", "__pycache__", "*.so", "build", "*.egg-info")))
  return destination


@pytest.mark.slow
def test_wheel_installs_into_a_new_environment_and_runs_outside_the_checkout(
    tmp_path):
  env = {k: v for k, v in os.environ.items()
         if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
  env.update(CUDA_VISIBLE_DEVICES="", PIP_DISABLE_PIP_VERSION_CHECK="1",
             BERT_TF2_CACHE_DIR=str(tmp_path / "cache"))
  source = _copy_sources(tmp_path / "source")
  _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
        "-w", tmp_path / "dist", source], tmp_path, env)
  wheels = list((tmp_path / "dist").glob("bert_tf2-*.whl"))
  assert len(wheels) == 1

  fresh = tmp_path / "venv"
  venv.EnvBuilder(with_pip=True).create(fresh)
  python = fresh / "bin" / "python"
  _run([python, "-m", "pip", "install", "--no-deps", "-r",
        PROJECT_ROOT / "requirements.lock"], tmp_path, env)
  _run([python, "-m", "pip", "install", "--no-deps", wheels[0]], tmp_path, env)
  _run([python, "-m", "pip", "check"], tmp_path, env)

  work = tmp_path / "elsewhere"
  work.mkdir()
  # The modules come from the install, not from a checkout; imported as a library
  # (as a custom processor imports run_classifier), they leave the environment
  # alone.
  bare = {k: v for k, v in env.items() if not k.startswith("TF_")}
  where = _run([python, "-c", "import os, run_classifier, tokenization, native; "
                "assert not [k for k in os.environ if k.startswith('TF_')]; "
                "print(run_classifier.__file__); print(native.__file__)"],
               work, bare).stdout.split()
  for path in where:
    assert str(fresh) in path and str(source) not in path, path
  for script in CONSOLE_SCRIPTS:
    # absl's --help exits 1 after printing (as the original scripts did).
    result = subprocess.run([str(fresh / "bin" / script), "--help"], cwd=str(work),
                            env=env, capture_output=True, text=True, timeout=300)
    text = result.stdout + result.stderr
    assert result.returncode in (0, 1) and "Traceback" not in text, (script, text)
    assert "usage" in text.lower() or "--output_dir" in text, (script, text)

  # One short training run with evaluation; the C++ parts are compiled on first
  # use into the cache, never into the installed package.
  setup = write_tiny_setup(work, n_train=16, n_dev=8)
  out = work / "out"
  result = _run([fresh / "bin" / "bert-run-classifier", "--task_name=emotion",
                 f"--data_dir={setup['data']}", f"--vocab_file={setup['vocab']}",
                 f"--bert_config_file={setup['config']}", f"--output_dir={out}",
                 "--max_seq_length=16", "--do_train", "--do_eval",
                 "--train_batch_size=16", "--num_train_epochs=1"], work, env)
  assert read_eval_results(out / "eval_results.txt")["global_step"] == "1"
  assert "Building the optimizer and LayerNorm CPU kernels" in result.stderr
  built = sorted(p.name.split(".")[0] for p in (tmp_path / "cache").glob("*.so"))
  assert built == ["_bert_kernels", "_wordpiece"], built
  site = Path(where[1]).parent.parent
  assert not list(site.glob("native/*.so")) and not list(site.glob("modeling/**/*.so"))
