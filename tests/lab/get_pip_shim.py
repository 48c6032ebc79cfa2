"""Stand-in for pypa's get-pip.py, which ansible-test --venv downloads from a host this
machine cannot reach: bootstrap pip with ensurepip, then let it install what was asked.

scripts/lab puts it where ansible-test looks for its cached copy
(~/.ansible/test/cache/get_pip_<version>.py).
"""

import subprocess
import sys

# In a child process: ensurepip clears PIP_* and the pip configuration of its own process.
subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"])
# get-pip.py options that pip itself does not know.
args = [arg for arg in sys.argv[1:] if arg not in ("--no-setuptools", "--no-wheel")]
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install", *args]))
