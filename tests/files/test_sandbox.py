"""Confinement on real files: every escape class of THREATS.md, several payloads each."""

import os
import socket
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from bulkhead.errors import InvalidArgumentError, NotFoundError
from bulkhead_files.sandbox import NameMatcher, Sandbox
from bulkhead_files.settings import DEFAULT_DENY
from tests.files.conftest import SECRET


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """root/ (served) beside outside/ and root-private/ (not served)."""
    root = tmp_path / "root"
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "guide.md").write_text("# Guide\n")
    (root / "hello.txt").write_text("hello\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text(SECRET)
    (outside / "guide.md").write_text(SECRET)
    sibling = tmp_path / "root-private"
    sibling.mkdir()
    (sibling / "secret.txt").write_text(SECRET)
    return tmp_path


@pytest.fixture
def sandbox(tree: Path) -> Iterator[Sandbox]:
    box = Sandbox([str(tree / "root")], deny=DEFAULT_DENY)
    yield box
    box.close()


def read(box: Sandbox, path: str) -> str:
    with box.open(path) as opened:
        return os.read(opened.fd, 1 << 20).decode()


def test_relative_and_absolute_paths_inside_the_root_are_read(sandbox: Sandbox, tree: Path) -> None:
    assert read(sandbox, "hello.txt") == "hello\n"
    assert read(sandbox, "./docs//guide.md") == "# Guide\n"
    assert read(sandbox, str(tree / "root" / "docs" / "guide.md")) == "# Guide\n"
    with sandbox.open(str(tree / "root" / "docs" / "guide.md")) as opened:
        assert opened.path == str(tree.resolve() / "root" / "docs" / "guide.md")


@pytest.mark.parametrize(
    "payload",
    [
        "../outside/secret.txt",
        "docs/../../outside/secret.txt",
        "..",
        "docs/..",
        "./../outside/secret.txt",
        "docs/../../../../../../etc/passwd",
    ],
)
def test_dot_dot_is_refused_in_every_position(sandbox: Sandbox, payload: str) -> None:
    with pytest.raises(InvalidArgumentError, match=r"\.\."):
        sandbox.open(payload)


@pytest.mark.parametrize(
    "payload",
    [
        "%2e%2e/outside/secret.txt",
        "....//outside/secret.txt",
        ".../outside/secret.txt",
        "\u2024\u2024/secret.txt",
        "\uff0e\uff0e/outside/secret.txt",
        "..%2fsecret.txt",
    ],
)
def test_encoded_and_look_alike_dots_are_plain_names_that_do_not_exist(
    sandbox: Sandbox, payload: str
) -> None:
    with pytest.raises((NotFoundError, InvalidArgumentError)) as caught:
        sandbox.open(payload)
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize(
    "payload",
    [
        "..\\outside\\secret.txt",
        "docs\\..\\..\\outside",
        "~",
        "~/secret.txt",
        "~root/.ssh/id_rsa",
        "a\0b",
        "hello.txt\0.md",
        "docs/\nguide.md",
        "x" * 5000,
    ],
)
def test_backslashes_home_paths_nul_control_characters_and_huge_paths_are_refused(
    sandbox: Sandbox, payload: str
) -> None:
    with pytest.raises(InvalidArgumentError):
        sandbox.open(payload)


def test_absolute_paths_outside_the_roots_and_sibling_prefixes_are_refused(
    sandbox: Sandbox, tree: Path
) -> None:
    for payload in [
        "/etc/passwd",
        "/",
        "//etc/passwd",
        str(tree / "outside" / "secret.txt"),
        str(tree / "root-private" / "secret.txt"),
        str(tree / "root") + "-private/secret.txt",
        str(tree / "root") + "/../outside/secret.txt",
    ]:
        with pytest.raises(InvalidArgumentError) as caught:
            sandbox.open(payload)
        assert SECRET not in str(caught.value)


def test_a_component_that_is_too_long_is_refused(sandbox: Sandbox) -> None:
    with pytest.raises(InvalidArgumentError):
        sandbox.open("a" * 300)


def test_symlinks_that_stay_inside_the_root_are_followed(sandbox: Sandbox, tree: Path) -> None:
    root = tree / "root"
    (root / "relative.md").symlink_to("docs/guide.md")
    (root / "absolute.md").symlink_to(root / "docs" / "guide.md")
    (root / "docs" / "up.txt").symlink_to("../hello.txt")
    (root / "alias").symlink_to("docs")
    (root / "chain1").symlink_to("chain2")
    (root / "chain2").symlink_to("hello.txt")
    assert read(sandbox, "relative.md") == "# Guide\n"
    assert read(sandbox, "absolute.md") == "# Guide\n"
    assert read(sandbox, "docs/up.txt") == "hello\n"
    assert read(sandbox, "alias/guide.md") == "# Guide\n"
    assert read(sandbox, "chain1") == "hello\n"
    with sandbox.open("alias", want="dir") as opened:
        assert opened.is_dir
        assert opened.parts == ("docs",)


def test_symlinks_that_leave_the_root_are_refused(sandbox: Sandbox, tree: Path) -> None:
    root = tree / "root"
    (root / "abs-out.txt").symlink_to(tree / "outside" / "secret.txt")
    (root / "rel-out.txt").symlink_to("../outside/secret.txt")
    (root / "docs" / "deep-out.txt").symlink_to("../../outside/secret.txt")
    (root / "outdir").symlink_to(tree / "outside")
    (root / "sibling").symlink_to(tree / "root-private")
    (root / "hop1").symlink_to("hop2")
    (root / "hop2").symlink_to("../outside/secret.txt")
    (root / "etc").symlink_to("/etc")
    (root / "loop").symlink_to("loop")
    for payload in [
        "abs-out.txt",
        "rel-out.txt",
        "docs/deep-out.txt",
        "outdir/secret.txt",
        "outdir",
        "sibling/secret.txt",
        "hop1",
        "etc/passwd",
        "loop",
    ]:
        with pytest.raises(InvalidArgumentError) as caught:
            sandbox.open(payload, want="any")
        assert SECRET not in str(caught.value)


def test_a_symlink_cannot_reach_a_denied_name(sandbox: Sandbox, tree: Path) -> None:
    root = tree / "root"
    (root / ".env").write_text("PASSWORD=hunter2")
    (root / "notes.txt").symlink_to(".env")
    (root / "keys").mkdir()
    (root / "keys" / "id_rsa").write_text("-----BEGIN")
    (root / "innocent").symlink_to("keys/id_rsa")
    for payload in ["notes.txt", "innocent"]:
        with pytest.raises(InvalidArgumentError, match="not available"):
            sandbox.open(payload)


def test_a_symlinked_root_is_served_at_its_real_path(tree: Path) -> None:
    (tree / "rootlink").symlink_to(tree / "root")
    box = Sandbox([str(tree / "rootlink")])
    try:
        assert box.roots[0].path == str((tree / "root").resolve())
        assert read(box, "hello.txt") == "hello\n"
        with pytest.raises(InvalidArgumentError):
            box.open(str(tree / "rootlink" / "hello.txt"))
    finally:
        box.close()


@pytest.mark.parametrize(
    "name",
    [
        ".env",
        ".env.local",
        ".ENV",
        "prod.env",
        "id_rsa",
        "id_ed25519.pub",
        "server.pem",
        "tls.key",
        "credentials",
        "credentials.json",
        "secrets.yaml",
        "store.p12",
        ".netrc",
        ".pgpass",
        ".npmrc",
    ],
)
def test_secret_looking_files_are_denied_by_default(sandbox: Sandbox, tree: Path, name: str) -> None:
    (tree / "root" / name).write_text("secret")
    with pytest.raises(InvalidArgumentError, match="not available"):
        sandbox.open(name)
    with sandbox.open("", want="dir") as opened:
        assert name not in [entry.name for entry in sandbox.scan(opened)]
    assert name not in [entry.relative for entry in sandbox.walk()]


@pytest.mark.parametrize(
    "path", [".git/config", ".git/HEAD", ".ssh/known_hosts", "sub/.aws/config", "sub/.git/objects/ab"]
)
def test_files_under_denied_directories_are_denied(sandbox: Sandbox, tree: Path, path: str) -> None:
    target = tree / "root" / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("secret")
    with pytest.raises(InvalidArgumentError, match="not available"):
        sandbox.open(path)
    assert not any(entry.relative == path for entry in sandbox.walk())


def test_the_deny_message_does_not_reveal_whether_the_file_exists(sandbox: Sandbox) -> None:
    with pytest.raises(InvalidArgumentError) as missing:
        sandbox.open(".env.production")
    assert "not available" in str(missing.value)


def test_hidden_files_are_off_by_default_and_on_by_setting_while_the_deny_list_holds(tree: Path) -> None:
    root = tree / "root"
    (root / ".bashrc").write_text("alias ll=ls")
    (root / ".env").write_text("PASSWORD=x")
    box = Sandbox([str(root)], deny=DEFAULT_DENY)
    shown = Sandbox([str(root)], deny=DEFAULT_DENY, show_hidden=True)
    try:
        with pytest.raises(InvalidArgumentError):
            box.open(".bashrc")
        assert read(shown, ".bashrc") == "alias ll=ls"
        with pytest.raises(InvalidArgumentError):
            shown.open(".env")
    finally:
        box.close()
        shown.close()


def test_the_deny_list_can_be_replaced_including_path_patterns(tree: Path) -> None:
    root = tree / "root"
    (root / "private").mkdir()
    (root / "private" / "plan.txt").write_text("plan")
    (root / "data.csv").write_text("a,b")
    (root / ".env").write_text("x")
    (root / "my-DRAFT-v2.md").write_text("draft")
    (root / "report?.txt").write_text("q")
    box = Sandbox([str(root)], deny=["*.csv", "private/*", "*draft*", "report[?].txt"], show_hidden=True)
    try:
        for payload in ["data.csv", "DATA.CSV", "private/plan.txt", "my-DRAFT-v2.md", "report?.txt"]:
            with pytest.raises((InvalidArgumentError, NotFoundError)):
                box.open(payload)
        assert read(box, ".env") == "x"
        assert {entry.relative for entry in box.walk()} == {"docs/guide.md", "hello.txt", ".env"}
    finally:
        box.close()


def test_fifos_sockets_and_devices_are_refused_without_blocking(sandbox: Sandbox, tree: Path) -> None:
    root = tree / "root"
    os.mkfifo(root / "pipe")
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(root / "sock"))
    os.mknod(root / "null", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    (root / "pipe-link").symlink_to("pipe")
    try:
        for payload in ["pipe", "sock", "null", "pipe-link"]:
            with pytest.raises(InvalidArgumentError, match="not a regular file"):
                sandbox.open(payload, want="any")
    finally:
        server.close()
    assert {entry.relative for entry in sandbox.walk()} == {"docs/guide.md", "hello.txt"}


def test_hard_links_are_refused_unless_allowed(tree: Path) -> None:
    root = tree / "root"
    os.link(tree / "outside" / "secret.txt", root / "linked.txt")
    box = Sandbox([str(root)])
    allowed = Sandbox([str(root)], allow_hard_links=True)
    try:
        with pytest.raises(InvalidArgumentError, match="hard link"):
            box.open("linked.txt")
        assert read(allowed, "linked.txt") == SECRET
    finally:
        box.close()
        allowed.close()


def test_directories_and_files_are_told_apart(sandbox: Sandbox) -> None:
    with pytest.raises(InvalidArgumentError, match="is a directory"):
        sandbox.open("docs")
    with pytest.raises(InvalidArgumentError, match="is a file, not a directory"):
        sandbox.open("hello.txt", want="dir")
    with pytest.raises(NotFoundError):
        sandbox.open("hello.txt/inner")
    with pytest.raises(NotFoundError):
        sandbox.open("missing.txt")


def test_a_file_removed_after_listing_is_simply_not_found(sandbox: Sandbox, tree: Path) -> None:
    listed = [entry.relative for entry in sandbox.walk()]
    assert "hello.txt" in listed
    (tree / "root" / "hello.txt").unlink()
    with pytest.raises(NotFoundError):
        sandbox.open("hello.txt")


def test_the_walk_prunes_denied_and_hidden_directories_and_does_not_follow_links(
    sandbox: Sandbox, tree: Path
) -> None:
    root = tree / "root"
    (root / ".git" / "objects").mkdir(parents=True)
    (root / ".git" / "objects" / "x").write_text("x")
    (root / "outdir").symlink_to(tree / "outside")
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "b" / "c.txt").write_text("c")
    assert [entry.relative for entry in sandbox.walk()] == ["a/b/c.txt", "docs/guide.md", "hello.txt"]
    budget = [2]
    assert len(list(sandbox.walk(budget=budget))) < 3


def test_client_roots_narrow_but_never_widen(sandbox: Sandbox, tree: Path) -> None:
    root = tree.resolve() / "root"
    narrowed = sandbox.narrowed([f"{root}/docs"])
    try:
        assert [r.path for r in narrowed.roots] == [f"{root}/docs"]
        assert read(narrowed, "guide.md") == "# Guide\n"
        with pytest.raises(InvalidArgumentError):
            narrowed.open(str(root / "hello.txt"))
    finally:
        narrowed.close()
    for widening in [[str(tree)], ["/"], [str(root) + "/.."]]:
        wide = sandbox.narrowed(widening)
        try:
            assert [r.path for r in wide.roots] == [str(root)]
        finally:
            wide.close()
    for outside in [[str(tree / "outside")], [str(root) + "-private"], ["relative/path"], [f"{root}/.git"]]:
        empty = sandbox.narrowed(outside)
        try:
            assert empty.roots == []
            with pytest.raises(InvalidArgumentError, match="client's roots"):
                empty.open("hello.txt")
        finally:
            empty.close()


def test_a_client_root_through_an_escaping_symlink_is_ignored(sandbox: Sandbox, tree: Path) -> None:
    root = tree.resolve() / "root"
    (root / "outdir").symlink_to(tree / "outside")
    narrowed = sandbox.narrowed([f"{root}/outdir"])
    try:
        assert narrowed.roots == []
    finally:
        narrowed.close()


def _swap_file(target: Path, secret_link: Path, stop: threading.Event) -> None:
    """Swap `target` between a regular file and a symlink to the secret, atomically, until told."""
    regular = target.with_name("regular.tmp")
    link = target.with_name("link.tmp")
    while not stop.is_set():
        regular.write_text("public")
        os.replace(regular, target)
        link.unlink(missing_ok=True)
        link.symlink_to(secret_link)
        os.replace(link, target)


def _swap_dir(target: Path, outside: Path, stop: threading.Event) -> None:
    """Swap directory `target` with a symlink to `outside`, over and over, until told."""
    parked = target.with_name("parked")
    link = target.with_name("dirlink.tmp")
    link.symlink_to(outside)
    while not stop.is_set():
        os.rename(target, parked)
        os.rename(link, target)
        os.rename(target, link)
        os.rename(parked, target)


@pytest.mark.parametrize("mode", ["file", "directory"])
def test_a_file_swapped_for_a_symlink_while_being_read_never_yields_the_secret(
    sandbox: Sandbox, tree: Path, mode: str
) -> None:
    root = tree / "root"
    stop = threading.Event()
    if mode == "file":
        (root / "race.txt").write_text("public")
        path = "race.txt"
        swapper = threading.Thread(
            target=_swap_file, args=(root / "race.txt", tree / "outside" / "secret.txt", stop)
        )
    else:
        path = "docs/guide.md"
        swapper = threading.Thread(target=_swap_dir, args=(root / "docs", tree / "outside", stop))
    outcomes: dict[str, int] = {}
    swapper.start()
    try:
        # At least 3,000 reads, and on until both outcomes were seen (bounded: 200,000 reads).
        for attempt in range(200_000):
            refused = outcomes.get("InvalidArgumentError", 0) + outcomes.get("NotFoundError", 0)
            if attempt >= 3000 and outcomes.get("read", 0) and refused:
                break
            try:
                text = read(sandbox, path)
            except (InvalidArgumentError, NotFoundError) as exc:
                assert SECRET not in str(exc)  # noqa: PT017 -- thousands of reads, either outcome is fine
                outcomes[type(exc).__name__] = outcomes.get(type(exc).__name__, 0) + 1
            else:
                assert SECRET not in text
                outcomes["read"] = outcomes.get("read", 0) + 1
    finally:
        stop.set()
        swapper.join()
    # The race really ran: some reads met the file, some met the link.
    assert outcomes.get("read", 0) > 0
    assert outcomes.get("InvalidArgumentError", 0) + outcomes.get("NotFoundError", 0) > 0


def test_remembered_deny_verdicts_match_the_patterns_and_stay_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    matcher = NameMatcher(["*.pem", "id_rsa*", ".env", "sec?et"])
    monkeypatch.setattr(type(matcher.verdicts), "MAX_VERDICTS", 4)
    names = ["a.PEM", "id_rsa.pub", ".ENV", "secret", "plain.txt", "pem", "x.pem.txt"] * 3
    for name in names:
        assert matcher(name) == matcher.match(name)
        assert len(matcher.verdicts) <= 4
    assert [matcher(n) for n in names[:7]] == [True, True, True, True, False, False, False]


def test_listing_schema_publishes_entries_without_a_per_item_schema_but_the_model_checks_them() -> None:
    from pydantic import ValidationError  # noqa: PLC0415

    from bulkhead_files.models import DirectoryListing  # noqa: PLC0415

    entries = DirectoryListing.model_json_schema()["properties"]["entries"]
    assert entries["type"] == "array"
    assert "items" not in entries
    with pytest.raises(ValidationError):
        DirectoryListing.model_validate({"path": "/", "entries": [1], "total": 1})
