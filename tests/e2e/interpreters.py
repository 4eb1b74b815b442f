#!/usr/bin/env python3
"""Lists the CPython interpreters on this machine that the end-to-end tests run against.

Prints one 'found LABEL PATH' line per interpreter and one 'skipped X.Y: reason' line per
supported version with none. Searched: pyenv builds (~/.pyenv/versions/*/bin/python),
the system's /usr/bin/python3.*, the Debian sid chroot that scripts/get-pythons makes
($PYSAMPLE_SID_ROOT, default /var/cache/pysample/sid; listed as ROOT::PATH, run with chroot), and
any paths in $PYSAMPLE_TEST_PYTHONS (colon-separated).
"""
import glob
import os
import subprocess

SUPPORTED = [(2, 7)] + [(3, minor) for minor in range(6, 16)]
SID_ROOT = os.environ.get("PYSAMPLE_SID_ROOT", "/var/cache/pysample/sid")


def command_of(path):
    if "::" in path:
        root, inner = path.split("::", 1)
        return ["chroot", root, inner]
    return [path]


def runnable(path):
    if "::" in path:
        root, inner = path.split("::", 1)
        return os.access(root + inner, os.X_OK) and os.geteuid() == 0
    return os.access(path, os.X_OK)


def version_of(path):
    try:
        out = subprocess.run(command_of(path) + ["-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                             capture_output=True, text=True, timeout=20).stdout.strip()
        major, minor = out.split(".")
        return int(major), int(minor)
    except (OSError, ValueError, subprocess.SubprocessError):
        return None


def candidates():
    home = os.path.expanduser("~")
    for path in sorted(glob.glob(os.path.join(home, ".pyenv/versions/*/bin/python"))):
        yield "pyenv", path
    for path in sorted(glob.glob("/usr/bin/python3.[0-9]*")):
        if re_plain_version(os.path.basename(path)):
            yield "system", path
    for path in sorted(glob.glob(os.path.join(SID_ROOT, "usr/bin/python3.[0-9]*"))):
        name = os.path.basename(path)
        if re_plain_version(name.rstrip("d")):
            yield ("sid-debug" if name.endswith("d") else "sid"), SID_ROOT + "::/usr/bin/" + name
    for path in filter(None, os.environ.get("PYSAMPLE_TEST_PYTHONS", "").split(":")):
        yield "extra", path


def re_plain_version(name):
    import re
    return re.fullmatch(r"python\d\.\d+", name) is not None


def main():
    found = {}
    for kind, path in candidates():
        if not runnable(path):
            continue
        version = version_of(path)
        if version in SUPPORTED:
            label = "%d.%d-%s" % (version[0], version[1], kind)
            if label not in found:
                found[label] = (version, path)
    for label, (version, path) in sorted(found.items(), key=lambda item: (item[1][0], item[0])):
        print("found %s %s" % (label, path))
    versions_found = {version for version, _ in found.values()}
    for version in SUPPORTED:
        if version not in versions_found:
            hint = " (scripts/get-pythons provides it)" if version >= (3, 14) else ""
            print("skipped %d.%d: no interpreter found%s" % (version[0], version[1], hint))


if __name__ == "__main__":
    main()
