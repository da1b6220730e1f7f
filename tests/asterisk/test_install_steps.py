"""README's "Install next to Asterisk", run as written against the real Asterisk, so it cannot drift.

The ```sh blocks of that section are what an admin types as root. This test extracts them in order
and runs them with bash (``-euo pipefail``, Debian's default root ``PATH``) in two parts around
step 3, which is prose (merging snippets into ``/etc/asterisk`` by hand) and which the test does
itself; the run must end with step 6's ``medagent check`` exiting 0. Blocks after the check
(systemd) are not run, but the project files they copy must exist.

What differs from the admin's run, and nothing else (see :data:`LINE_STAND_INS`):

- **Paths**: ``/opt/medagent``, ``/etc/medagent``, ``/var/lib/medagent`` and ``/etc/asterisk`` are
  moved under a temporary root, in the script and in the ``medagent.toml`` that ``config example``
  writes (its ``database.key_file`` is ``/etc/medagent/record.key``).
- **No downloads**: ``apt-get`` does nothing (this machine has the packages); ``git clone`` does
  nothing, the test lays this checkout out as ``/opt/medagent`` (its entries linked, without
  ``.venv``); ``pip install /opt/medagent`` is replaced by a ``.pth`` file in the fresh venv that
  README's ``python3.11 -m venv`` made, pointing at this checkout's built ``.venv``, and by the
  ``medagent`` script pip would write.
- **Step 3** is done by the test: the tier's Asterisk (configuration generated from
  ``asterisk-conf/`` and ``dialplans/`` by real_asterisk.py), started with the secrets step 2
  generated as its ARI password and AMI secret; the phones of ``asterisk-conf/pjsip.conf`` that the
  tier's generated pjsip.conf leaves out are merged in (each ``CHANGE`` password filled), then
  ``module reload res_pjsip.so``. ``/etc/asterisk`` is that Asterisk's configuration folder.
- **medagent.toml** gets the edits README describes (``password_file`` for ARI and AMI,
  ``[ami] enabled = true``) plus the ARI and AMI ports of this Asterisk instead of 8088 and 5038.

The ``medagent`` user is created by README's own ``useradd`` when missing, and deleted afterwards
in that case only. Skips when not root, without the real Asterisk, or without a ``python3.11``
on Debian's default ``PATH`` that the ``medagent`` user may run (README's interpreter).
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from real_asterisk import ASTERISK_CONF, RealAsterisk, unavailable_reason

from agent.adapters.asterisk_conf import parse, resolved

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
SECTION = "## Install next to Asterisk"
USER = "medagent"
DEBIAN_ROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
"""What root's shell has on a fresh Debian 12: README's commands must be found there."""

REDIRECTED = ("/opt/medagent", "/etc/medagent", "/var/lib/medagent", "/etc/asterisk")
"""The paths README installs to, moved under the test's temporary root."""

LINE_STAND_INS: tuple[tuple[str, str], ...] = (
    (r"^apt-get .*$", ": apt-get skipped: no downloads in a test"),
    (r"^git clone .*$", ": git clone skipped: the test linked this checkout into /opt/medagent"),
    (r"^(\S+)/bin/pip install \S+(\s+#.*)?$", r"pip_install_stand_in \1"),
    (r"(\bconfig example)\s*>", r"\1 | redirect_paths >"),
)
"""(regex on one command of the script, replacement): the only commands the test changes. Each must
match in steps 1-2, or nothing runs: a stale one would install for real, or write to /etc."""

PIP_STAND_IN = r"""
# pip install, without the network: this checkout's built venv on the new venv's path, and the
# console script pip would write (pyproject.toml [project.scripts] medagent = agent.cli:main).
pip_install_stand_in() {
    site=$("$1/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
    echo "import site; site.addsitedir('$BUILT_SITE_PACKAGES')" > "$site/medagent-checkout.pth"
    printf '#!%s\nimport sys\nfrom agent.cli import main\nsys.exit(main())\n' \
        "$1/bin/python" > "$1/bin/medagent"
    chmod 755 "$1/bin/medagent"
}
"""


@dataclass(frozen=True)
class Block:
    step: int
    """The number of the ``### N.`` heading the block is under."""
    text: str


def install_blocks(readme: str) -> list[Block]:
    """The ```sh blocks of README's install section, in order."""
    start = readme.index(f"\n{SECTION}\n")
    end = readme.find("\n## ", start + 1)
    section = readme[start : end if end > 0 else len(readme)]
    blocks: list[Block] = []
    step = 0
    for m in re.finditer(r"^### (\d+)\.|^```sh\n(.*?)^```$", section, re.M | re.S):
        if m.group(1):
            step = int(m.group(1))
        else:
            blocks.append(Block(step, m.group(2)))
    return blocks


def is_check(block: Block) -> bool:
    return re.search(r"/bin/medagent .*\bcheck\b", block.text) is not None


class Sandbox:
    """The temporary root README's paths are moved under."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.stand_ins_used: set[str] = set()

    def path(self, readme_path: str) -> Path:
        return self.root / readme_path.lstrip("/")

    def redirect(self, text: str) -> str:
        pattern = "|".join(re.escape(p) for p in REDIRECTED)
        return re.sub(rf"(?<![\w./-])({pattern})(?![\w-])", rf"{self.root}\1", text)

    def script(self, blocks: list[Block]) -> str:
        """The blocks as one bash script. Each command (a line with its backslash continuations)
        is checked on its own: ``set -e`` lets ``cd /missing && cmd`` fail silently, an admin
        would see the error."""
        commands: list[str] = []
        for command in re.split(r"(?<!\\)\n", "\n".join(b.text for b in blocks)):
            if not command.strip() or command.lstrip().startswith("#"):
                continue
            command = self.redirect(command)
            for pattern, replacement in LINE_STAND_INS:
                command, n = re.subn(pattern, replacement, command)
                if n:
                    self.stand_ins_used.add(pattern)
            commands.append(
                f"{{ {command}\n}} || {{ rc=$?; echo 'README command failed' >&2; exit $rc; }}"
            )
        sed = "; ".join(f"s#{p}#{self.root}{p}#g" for p in REDIRECTED)
        prelude = PIP_STAND_IN + f"redirect_paths() {{ sed -e '{sed}'; }}\nset -x\n"
        return prelude + "\n".join(commands) + "\n"

    def run(self, name: str, blocks: list[Block], env: dict[str, str]) -> str:
        path = self.root / f"{name}.sh"
        path.write_text(self.script(blocks))
        unused = [p for p, _ in LINE_STAND_INS if p not in self.stand_ins_used]
        assert unused == [], f"README changed under these stand-ins; update them: {unused}"
        proc = subprocess.run(
            ["bash", "-euo", "pipefail", str(path)],
            cwd=self.root,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        output = proc.stdout + proc.stderr
        assert proc.returncode == 0, f"{name} failed ({proc.returncode}):\n{output[-6000:]}"
        return proc.stdout


def edit_toml(text: str, changes: dict[tuple[str, str], str]) -> str:
    """Replace the line of ``key`` in ``[section]`` by a new line, as an admin edits the file."""
    out: list[str] = []
    section = ""
    done: set[tuple[str, str]] = set()
    for line in text.splitlines():
        if m := re.match(r"^\[([\w.]+)\]", line):
            section = m.group(1)
        elif m := re.match(r"^(\w+)\s*=", line):
            where = (section, m.group(1))
            if where in changes and where not in done:
                line = changes[where]
                done.add(where)
        out.append(line)
    assert done == set(changes), f"not in the example medagent.toml: {set(changes) - done}"
    return "\n".join(out) + "\n"


def merge_our_phones(pjsip_conf: Path) -> list[str]:
    """Append the endpoints of asterisk-conf/pjsip.conf that ``pjsip_conf`` lacks, as the admin
    merges the snippet (auth password filled in, as its CHANGE line says); their names."""
    ours = parse((ASTERISK_CONF / "pjsip.conf").read_text(), source="asterisk-conf/pjsip.conf")
    have = {s.name for s in parse(pjsip_conf.read_text()).sections}
    lines: list[str] = []
    added: list[str] = []
    for endpoint in ours.sections:
        options = resolved(ours, endpoint)
        if endpoint.template or options.get("type") != "endpoint" or endpoint.name in have:
            continue
        added.append(endpoint.name)
        parts = ours.named(endpoint.name) + ours.named(options.get("auth", ""))
        for section in parts:
            flags = f"({','.join(section.inherits)})" if section.inherits else ""
            lines.append(f"[{section.name}]{flags}")
            lines += [f"{o.key} = {o.value}" for o in section.options]
            if resolved(ours, section).get("type") == "auth":
                lines.append(f"password = {uuid.uuid4().hex}")
            lines.append("")
    with pjsip_conf.open("a") as fh:
        fh.write("\n; merged from asterisk-conf/pjsip.conf by test_install_steps.py\n")
        fh.write("\n".join(lines))
    return added


def python_for_the_service_user() -> str | None:
    """Why README's ``python3.11`` cannot serve here, or ``None``."""
    interpreter = shutil.which("python3.11", path=DEBIAN_ROOT_PATH)
    if interpreter is None:
        return f"no python3.11 on {DEBIAN_ROOT_PATH} (README's interpreter)"
    if sys.version_info[:2] != (3, 11):
        return "the built .venv is not Python 3.11: its packages cannot serve README's venv"
    for part in Path(interpreter).resolve().parents:
        if not os.stat(part).st_mode & 0o001:
            return f"{interpreter} is under {part}, which other users cannot enter"
    return None


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    if os.geteuid() != 0:
        pytest.skip("README's install steps run as root (useradd, runuser, chown)")
    for reason in (unavailable_reason(), python_for_the_service_user()):
        if reason is not None:
            pytest.skip(reason)
    try:
        pwd.getpwnam(USER)
        user_existed = True
    except KeyError:
        user_existed = False
    # Not pytest's tmp_path: its parents are private to root, and the service user must read
    # /opt/medagent, /etc/medagent and /etc/asterisk below this root.
    root = Path(tempfile.mkdtemp(prefix="medagent-install-"))
    root.chmod(0o755)
    try:
        yield Sandbox(root)
    finally:
        if not user_existed:
            subprocess.run(["userdel", USER], check=False, capture_output=True)
            subprocess.run(["groupdel", USER], check=False, capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def test_readme_install_steps_run_as_written_and_end_in_a_passing_check(sandbox: Sandbox) -> None:
    blocks = install_blocks(README.read_text())
    checks = [i for i, b in enumerate(blocks) if is_check(b)]
    assert checks, "README's install section has no ```sh block running `medagent check`"
    last = checks[-1]
    before_asterisk = [b for b in blocks[: last + 1] if b.step < 3]
    after_asterisk = [b for b in blocks[: last + 1] if b.step >= 3]
    assert before_asterisk and after_asterisk[-1] is blocks[last]

    # /opt/medagent as a clone of this checkout has it (git clone is a stand-in, see above).
    opt = sandbox.path("/opt/medagent")
    opt.mkdir(parents=True)
    for entry in ROOT.iterdir():
        if entry.name not in (".git", ".venv"):
            (opt / entry.name).symlink_to(entry)
    env = {
        "PATH": DEBIAN_ROOT_PATH,
        "HOME": str(sandbox.root),
        "LANG": "C.UTF-8",
        # This test runs in the built venv: its packages are what the stand-in for pip lends.
        "BUILT_SITE_PACKAGES": sysconfig.get_path("purelib"),
    }

    # Steps 1 and 2: install, train the intent model, secrets and the patient-data key.
    sandbox.run("steps-1-2", before_asterisk, env)
    etc = sandbox.path("/etc/medagent")
    ari_secret = (etc / "ari.secret").read_text()
    ami_secret = (etc / "ami.secret").read_text()
    assert (etc / "record.key").stat().st_uid == pwd.getpwnam(USER).pw_uid

    # Step 3, the admin's part: Asterisk with those secrets and our snippets.
    box = RealAsterisk(sandbox.root / "asterisk", ari_password=ari_secret, ami_secret=ami_secret)
    try:
        box.start()
        merged = merge_our_phones(box.astrun / "etc" / "pjsip.conf")
        if merged:
            box.cli("module reload res_pjsip.so")
        sandbox.path("/etc/asterisk").symlink_to(box.astrun / "etc")
        toml = etc / "medagent.toml"
        toml.write_text(
            sandbox.redirect(
                edit_toml(
                    toml.read_text(),
                    {
                        ("ari", "url"): f'url = "{box.ari_url}"',
                        ("ari", "password"): 'password_file = "/etc/medagent/ari.secret"',
                        ("ami", "enabled"): "enabled = true",
                        ("ami", "port"): f"port = {box.ports.ami}",
                        ("ami", "password"): 'password_file = "/etc/medagent/ami.secret"',
                    },
                )
            )
        )

        # Step 6 (and whatever README adds between 3 and 6): the check passes.
        out = sandbox.run("steps-3-6", after_asterisk, env)
    finally:
        box.stop()
    assert "all checks passed" in out, out
    for target in ("frontdesk", "billing", "nurse", "clinician100"):
        assert f"-> PJSIP/{target} exists" in out, out
    assert "PROBLEM" not in out, out


def test_files_the_later_steps_copy_from_the_checkout_exist() -> None:
    # Blocks after the check need a booted systemd, so they are not run; what they copy from
    # /opt/medagent must still be in the project.
    blocks = install_blocks(README.read_text())
    last = max(i for i, b in enumerate(blocks) if is_check(b))
    named = {
        rel
        for b in blocks[last + 1 :]
        for rel in re.findall(r"/opt/medagent/([\w./-]+)", b.text)
        if not rel.startswith(".venv/")
    }
    assert named, "expected the systemd step to copy the unit from /opt/medagent"
    assert [rel for rel in sorted(named) if not (ROOT / rel).exists()] == []
