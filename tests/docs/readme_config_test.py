#!/usr/bin/env python3
"""The YAML config reference in README.md is a config the real binary accepts.
Usage: readme_config_test.py SOURCE_DIR BUILD_DIR"""
import os, re, subprocess, sys, tempfile

src, build = sys.argv[1], sys.argv[2]
text = open(os.path.join(src, "README.md")).read()
section = text[text.index("## YAML config"):text.index("## Records")]
block = re.search(r"```yaml\n(.*?)```", section, re.S).group(1)
with tempfile.TemporaryDirectory() as d:
    path = os.path.join(d, "readme.yaml")
    with open(path, "w") as f:
        f.write(block)
    r = subprocess.run([os.path.join(build, "sink"), "--config", path, "--print-config"], capture_output=True,
                       text=True)
    if r.returncode != 0:
        print("README.md's YAML example is refused:\n" + r.stderr)
        sys.exit(1)
print("README.md's YAML example loads")
