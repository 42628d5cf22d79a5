"""The fsck policy of a filesystem resource: whether to check before mounting, with what,
and what the checker's exit status means. Pure.

`auto` follows the OCF Filesystem agent (fsck only for filesystems without a journal)
and adds one case for the ext family: a journaled filesystem whose superblock says the
kernel found errors in it is preened too, since mounting it as it is would build on
known damage. A journaled filesystem merely left "not clean" by a crash is not checked:
the mount's journal replay is its recovery, and a full check of a large filesystem could
outlast the start timeout at every failover. See docs/decisions.md.
"""

from __future__ import annotations

from dataclasses import dataclass

EXT_TYPES = ("ext2", "ext3", "ext4")
# Filesystems without a journal that have a checker which can preen (fsck -p / -a).
UNJOURNALED = ("ext2", "vfat", "msdos", "fat", "exfat", "minix")

# fsck(8) exit status bits; 1 and 2 mean "errors corrected".
FSCK_CORRECTED = 1 | 2
FSCK_MEANING = {
    4: "errors left uncorrected",
    8: "operational error",
    16: "usage or syntax error",
    32: "cancelled by user request",
    128: "shared-library error",
}


@dataclass(frozen=True)
class ExtSuperblock:
    state: str  # "clean", "not clean", "clean with errors", ...
    features: frozenset[str]

    @property
    def journaled(self) -> bool:
        return "has_journal" in self.features

    @property
    def has_errors(self) -> bool:
        return "error" in self.state


def parse_dumpe2fs(text: str) -> ExtSuperblock:
    """The two lines of `dumpe2fs -h` that the policy reads."""
    state, features = "", frozenset[str]()
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        if key.strip() == "Filesystem state":
            state = value.strip()
        elif key.strip() == "Filesystem features":
            features = frozenset(value.split())
    if not state:
        raise ValueError("no 'Filesystem state' line in dumpe2fs -h output")
    return ExtSuperblock(state, features)


@dataclass(frozen=True)
class FsckStep:
    argv: tuple[str, ...]
    why: str


def fsck_argv(fs_type: str, device: str, *, full: bool = False) -> tuple[str, ...]:
    """Preen: repair what is safe without a person, stop on anything else (exit 4).
    e2fsck -p skips a filesystem its superblock calls clean; `full` (-f) checks anyway."""
    if fs_type in EXT_TYPES:
        return ("e2fsck", *(["-f"] if full else []), "-p", device)
    return ("fsck", "-t", fs_type, "-p", device)


def needs_superblock(policy: str, fs_type: str) -> bool:
    """Whether plan_fsck wants `dumpe2fs -h` read first."""
    return policy == "auto" and fs_type in EXT_TYPES


def plan_fsck(
    policy: str,
    fs_type: str,
    device: str,
    superblock: ExtSuperblock | None = None,
    superblock_error: str | None = None,
) -> FsckStep | None:
    """What to run before mounting, or None. For `auto` on the ext family pass the parsed
    superblock, or why it could not be read (then e2fsck runs and says what is wrong)."""
    if policy == "never":
        return None
    if policy == "force":
        return FsckStep(fsck_argv(fs_type, device, full=True), "fsck: force")
    argv = fsck_argv(fs_type, device)
    if fs_type in EXT_TYPES:
        if superblock is None:
            return FsckStep(argv, f"its superblock could not be read: {superblock_error}")
        if superblock.has_errors:
            return FsckStep(argv, f"its superblock says '{superblock.state}'")
        if not superblock.journaled:
            return FsckStep(argv, "it has no journal")
        return None
    if fs_type in UNJOURNALED:
        return FsckStep(argv, "it has no journal")
    return None


def fsck_failure(returncode: int) -> str | None:
    """None when the filesystem may be mounted (clean, or errors corrected); else what
    the exit status says."""
    if returncode & ~FSCK_CORRECTED == 0:
        return None
    meanings = [text for bit, text in FSCK_MEANING.items() if returncode & bit]
    return f"exit status {returncode}: {', '.join(meanings) or 'unknown'}"
