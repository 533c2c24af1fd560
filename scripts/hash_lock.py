#!/usr/bin/env python3
"""Adds sha256 hashes to requirements.lock, for every Python version the lock serves.

    .venv/bin/python scripts/hash_lock.py            # rewrites requirements.lock

The pins stay as they are (the tested set); for each pin, pip resolves the file it
would install here and on CPython 3.11 and 3.12 on x86-64 Linux machines of several
glibc versions (without downloading more than metadata), and each file's sha256
goes into the lock. `pip install -r requirements.lock` then
checks every file it installs against them (pip's hash-checking mode).
"""

import json
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOCK = os.path.join(ROOT, "requirements.lock")
PYTHON_VERSIONS = ("3.11", "3.12")
# glibc versions of the machines to cover: a package with wheels for several
# manylinux levels gets the hash of each one a machine of these would pick.
GLIBC_MINORS = (28, 31, 34, 39)


def _platforms(glibc_minor):
  """The platform tags of an x86-64 Linux machine with glibc 2.<minor>, best first."""
  return tuple(f"manylinux_2_{minor}_x86_64"
               for minor in range(glibc_minor, 16, -1)) + ("manylinux2014_x86_64",
                                                            "linux_x86_64")


def _pins(text):
  """[(name, version)] of the lock's `name==version` lines, in order."""
  return re.findall(r"^([A-Za-z0-9_.\-]+)==([^\s\\;]+)", text, flags=re.M)


def _normal(name):
  return re.sub(r"[-_.]+", "-", name).lower()


def _hashes_for(pins, python_version, glibc_minor, work):
  """{normalised name: sha256} of the files pip picks for one Python version
  (None: this interpreter on this machine, exactly what an install here takes)."""
  requirements = os.path.join(work, "pins.txt")
  with open(requirements, "w", encoding="utf-8") as f:
    f.write("".join(f"{name}=={version}\n" for name, version in pins))
  report = os.path.join(work, f"report-{python_version}.json")
  sdists = []
  cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed",
         "--no-deps", "--quiet", "--report", report, "-r", requirements]
  if python_version is not None:
    cmd += ["--python-version", python_version, "--target",
            os.path.join(work, "target"), "--only-binary=:all:"]
    for platform in _platforms(glibc_minor):
      cmd += ["--platform", platform]
  while True:
    attempt = cmd + (["--no-binary=" + ",".join(sdists)]
                     if sdists and python_version is not None else [])
    proc = subprocess.run(attempt, capture_output=True, text=True)
    if proc.returncode == 0:
      break
    # A package published only as a source archive: allow its sdist and retry.
    missing = re.search(r"No matching distribution found for ([A-Za-z0-9_.\-]+)==",
                        proc.stderr)
    if not missing or missing.group(1) in sdists:
      if python_version is None:
        sys.exit(f"pip could not resolve the lock here:\n{proc.stderr[-3000:]}")
      return None  # the lock does not install on such a machine
    sdists.append(missing.group(1))
  with open(report, encoding="utf-8") as f:
    items = json.load(f)["install"]
  return {_normal(item["metadata"]["name"]):
          item["download_info"]["archive_info"]["hashes"]["sha256"] for item in items}


def main():
  with open(LOCK, encoding="utf-8") as f:
    text = f.read()
  header = [line for line in text.splitlines() if line.startswith("#")]
  pins = _pins(text)
  hashes = {}
  with tempfile.TemporaryDirectory() as work:
    targets = [(None, None)] + [(v, g) for v in PYTHON_VERSIONS for g in GLIBC_MINORS]
    covered = []
    for version, glibc_minor in targets:
      found = _hashes_for(pins, version, glibc_minor, work)
      if found is None:
        print(f"CPython {version}, glibc 2.{glibc_minor}: not installable (a pin "
              "has no file for it)")
        continue
      if version is not None:
        covered.append(f"{version}/glibc 2.{glibc_minor}")
      for name, sha in found.items():
        hashes.setdefault(name, set()).add(sha)
  print("covered: this machine, " + ", ".join(covered))
  lines = header or [
      "# The exact, tested versions (scripts/setup_env.sh installs them with --no-deps),",
      f"# with the sha256 of each file pip may pick on CPython {' or '.join(PYTHON_VERSIONS)},",
      "# x86-64 Linux with glibc 2.28 or newer. Regenerate them after changing a pin:",
      "#   .venv/bin/python scripts/hash_lock.py"]
  for name, version in pins:
    shas = sorted(hashes.get(_normal(name), ()))
    if not shas:
      sys.exit(f"no file found for {name}=={version}")
    lines.append(f"{name}=={version} \\")
    lines += [f"    --hash=sha256:{sha}" + (" \\" if i < len(shas) - 1 else "")
              for i, sha in enumerate(shas)]
  with open(LOCK + ".tmp", "w", encoding="utf-8") as f:
    f.write("\n".join(lines) + "\n")
  os.replace(LOCK + ".tmp", LOCK)
  print(f"{len(pins)} pins, {sum(len(v) for v in hashes.values())} hashes -> {LOCK}")


if __name__ == "__main__":
  main()
