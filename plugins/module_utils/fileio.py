# Copyright: privreg.registry contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Small file helpers shared by the collection's modules: read, and write atomically."""

from __future__ import annotations

import os
import tempfile


def read_bytes(path):
    """Return the file's content, or None when it does not exist."""
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def atomic_write(path, data, mode):
    """Write data to path so that readers see the old or the new file, never half of one.

    The temporary file is created next to the target (same filesystem, so the rename is
    atomic) with mode 0600 from the start, then given its final mode before the rename:
    a private key is never readable by others, not even for a moment.
    """
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp_path = tempfile.mkstemp(dir=directory, prefix=".privreg-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_path, mode)
        os.replace(tmp_path, path)
    except BaseException:
        if os.path.exists(tmp_path):
            os.unlink(tmp_path)
        raise


def file_mode(mode, default):
    """The numeric mode of the module's `mode` option (octal string or int), or default."""
    if mode is None:
        return default
    if isinstance(mode, int):
        return mode
    return int(str(mode), 8)


def keep_file(module, path, current, data, changed, mode):
    """A module's file as planned: data written (atomically, 0600 until renamed) when changed
    and not in check mode, then the file options and `mode` applied to it; whether anything
    changed. `current` is the file's content before, None when it did not exist."""
    changed = changed or current is None
    if changed and not module.check_mode:
        atomic_write(path, data, 0o600)
    if current is not None or not module.check_mode:
        changed = ensure_attributes(module, path, mode, changed)
    return changed


def ensure_attributes(module, path, mode, changed=False):
    """Apply the module's file options (owner, group, SELinux, attributes) and `mode` to an
    existing file; return whether anything changed."""
    file_args = module.load_file_common_arguments(module.params, path=path)
    file_args["mode"] = mode
    return module.set_fs_attributes_if_different(file_args, changed)
