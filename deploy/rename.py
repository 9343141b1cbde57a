"""Give the service its own name: ``make rename NAME="Acme Orders" SLUG=acme-orders``.

The current name is recorded in one place, ``[tool.template]`` of pyproject.toml (``name``, the
display name, and ``slug``). Every file git tracks (or would track) is searched for it in all its
spellings, wherever it is: config defaults, the OpenAPI title, compose and Kubernetes names and
labels, CI workflow names, docs, tests. Each occurrence keeps its spelling: were the service
called "My Service" (``my-service``), that rename would turn ``my-service`` into ``acme-orders``,
``my_service`` into ``acme_orders``, ``MY_SERVICE`` into ``ACME_ORDERS`` and "My Service" into
"Acme Orders".

The record itself is one of the occurrences, so a second rename starts from the new name; running
the same rename again changes nothing. Vendored assets, migration files (history) and binary files
are left alone. A name the code already uses is refused (documentation, this tool with its tests,
and lines that show a rename command aside): a later rename could not tell its own occurrences
from the code's.

Standard library only, so it runs before anything is installed.
"""

from __future__ import annotations

import argparse
import fnmatch
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SLUG_PATTERN = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
SLUG_MAX = 50  # Kubernetes names are at most 63 characters and get suffixes such as "-worker"
NAME_PATTERN = re.compile(r"[^\W_][\w .&'+-]*")
NAME_MAX = 80
# Files never rewritten: third-party assets as shipped, and migrations (they are history).
EXCLUDED = (
    "migrations/versions/*",
    "app/static/swagger-ui/swagger-ui*",
    "app/static/swagger-ui/LICENSE",
    "app/static/swagger-ui/NOTICE",
)
# Files whose mentions of a name are examples, not uses: a new name may appear there.
EXAMPLES = ("deploy/rename.py", "tests/template/*", "*.md")
RECORD_FILE = "pyproject.toml"
_ALNUM = "A-Za-z0-9"


class RenameError(Exception):
    """The rename cannot go ahead; the message says why in one line."""


@dataclass(frozen=True)
class ServiceName:
    """A display name and its slug; every other spelling is derived from the slug."""

    name: str
    slug: str

    @property
    def words(self) -> list[str]:
        """The slug's words (``acme-orders`` -> ``["acme", "orders"]``)."""
        return self.slug.split("-")

    def pattern(self) -> re.Pattern[str]:
        """Every spelling of this name as a whole word: the exact display name, or the slug's
        words in any case joined by one kind of separator (``-``, ``_`` or a space)."""
        first, *rest = (re.escape(word) for word in self.words)
        slug_form = (
            first + "(?P<sep>[-_ ])" + "(?P=sep)".join(rest) if rest else first + "(?P<sep>)"
        )
        return re.compile(
            rf"(?<![{_ALNUM}])"
            rf"(?:(?P<name>{re.escape(self.name)})|(?P<slug>(?i:{slug_form})))"
            rf"(?![{_ALNUM}])"
        )

    def spelled_like(self, match: re.Match[str]) -> str:
        """This name in the spelling of ``match`` (an occurrence of another name)."""
        if match.group("name") is not None:
            return self.name
        found = match.group("slug")
        separator = match.group("sep") or "-"
        if found.isupper():
            return separator.join(self.words).upper()
        if found.islower():
            return separator.join(self.words)
        if separator == " ":
            return self.name  # the name written in words in prose: the display name
        return separator.join(word.capitalize() for word in self.words)


def validate(name: str, slug: str) -> ServiceName:
    """The requested name, or ``RenameError`` saying what is wrong with it."""
    if not name.strip():
        raise RenameError('NAME is empty: give the display name, e.g. NAME="Acme Orders"')
    if name != name.strip() or "  " in name:
        raise RenameError(f"NAME {name!r} has leading, trailing or doubled spaces")
    if len(name) > NAME_MAX or not NAME_PATTERN.fullmatch(name):
        raise RenameError(
            f"NAME {name!r} is not a valid display name: letters, digits, spaces and . & ' + -, "
            f"starting with a letter or digit, at most {NAME_MAX} characters"
        )
    if len(slug) > SLUG_MAX or not SLUG_PATTERN.fullmatch(slug):
        raise RenameError(
            f"SLUG {slug!r} is not a valid slug: lower-case letters and digits in words joined "
            f"by single hyphens, starting with a letter, at most {SLUG_MAX} characters "
            "(e.g. acme-orders)"
        )
    return ServiceName(name=name, slug=slug)


def current_name(root: Path) -> ServiceName:
    """The name recorded in ``[tool.template]`` of pyproject.toml."""
    try:
        record = tomllib.loads((root / RECORD_FILE).read_text())["tool"]["template"]
        return ServiceName(name=record["name"], slug=record["slug"])
    except (OSError, KeyError, tomllib.TOMLDecodeError) as error:
        raise RenameError(
            f"cannot read the current name from [tool.template] in {RECORD_FILE}: {error}"
        ) from error


def candidate_files(root: Path) -> Iterator[Path]:
    """Tracked and untracked-but-not-ignored files, minus the excluded ones and binaries."""
    git = shutil.which("git")
    if git is None:
        raise RenameError("git is not installed; the rename lists the files git tracks")
    try:
        listing = subprocess.run(  # noqa: S603 (a fixed argument list, no shell)
            [git, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=root,
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as error:
        raise RenameError(
            f"{root} is not a git checkout (run `git init && git add -A` first): {error}"
        ) from error
    for relative in sorted({item.decode() for item in listing.split(b"\0") if item}):
        path = root / relative
        if path.is_symlink() or not path.is_file():
            continue
        if any(fnmatch.fnmatch(relative, pattern) for pattern in EXCLUDED):
            continue
        yield path


def read_text(path: Path) -> str | None:
    """The file's text, or None for a binary file."""
    data = path.read_bytes()
    if b"\0" in data[:8192]:
        return None
    try:
        return data.decode()
    except UnicodeDecodeError:
        return None


def uses_in_code(texts: dict[Path, str], pattern: re.Pattern[str], root: Path) -> list[str]:
    """``file:line`` of every match of ``pattern``, except in ``EXAMPLES`` and on lines that show
    a rename command (usage examples may well name the service being chosen)."""
    found = []
    for path, text in texts.items():
        relative = str(path.relative_to(root))
        if any(fnmatch.fnmatch(relative, example) for example in EXAMPLES):
            continue
        lines = text.splitlines()
        for match in pattern.finditer(text):
            number = text.count("\n", 0, match.start())
            if "rename" not in lines[number].lower():
                found.append(f"{relative}:{number + 1}")
    return found


def rename(root: Path, new: ServiceName, *, dry_run: bool = False) -> dict[Path, int]:
    """Rewrite every occurrence of the recorded name as ``new``; return the changes per file."""
    old = current_name(root)
    if old == new:
        return {}
    old_pattern = old.pattern()
    texts = {}
    for path in candidate_files(root):
        text = read_text(path)
        if text is not None:
            texts[path] = text
    # Refuse a new name the code already uses (not counting the old name's own occurrences).
    without_old = {path: old_pattern.sub("\0", text) for path, text in texts.items()}
    taken = uses_in_code(without_old, new.pattern(), root)
    if taken:
        more = f" and {len(taken) - 1} other places" if len(taken) > 1 else ""
        raise RenameError(
            f"{new.name!r} / {new.slug!r} already appears in {taken[0]}{more}; a later rename "
            "could not tell it from the code, so choose a more distinctive name"
        )
    changes = {}
    record = root / RECORD_FILE
    for path, text in texts.items():
        renamed, count = old_pattern.subn(new.spelled_like, text)
        if count:
            changes[path] = count
            if not dry_run and path != record:
                path.write_text(renamed)
    if record not in changes:
        raise RenameError(f"[tool.template] in {RECORD_FILE} does not spell the name it records")
    if not dry_run:  # last: an interrupted rename is finished by running it again
        record.write_text(old_pattern.sub(new.spelled_like, texts[record]))
    return changes


def main(argv: list[str] | None = None) -> int:
    """Command line: ``rename.py --name NAME --slug SLUG [--dry-run]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True, help='display name, e.g. "Acme Orders"')
    parser.add_argument("--slug", required=True, help="machine name, e.g. acme-orders")
    parser.add_argument("--dry-run", action="store_true", help="list the files, change nothing")
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        new = validate(args.name, args.slug)
        old = current_name(args.root)
        changes = rename(args.root, new, dry_run=args.dry_run)
    except RenameError as error:
        print(f"rename: {error}", file=sys.stderr)
        return 2
    if not changes:
        print(f"rename: already named {new.name} ({new.slug}); nothing to do")
        return 0
    for path, count in sorted(changes.items()):
        print(f"  {path.relative_to(args.root)}: {count}")
    verb = "would rename" if args.dry_run else "renamed"
    total = sum(changes.values())
    print(
        f"rename: {verb} {old.name} ({old.slug}) to {new.name} ({new.slug}): "
        f"{total} occurrences in {len(changes)} files"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
