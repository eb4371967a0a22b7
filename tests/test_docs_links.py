"""Every relative link of the README and the docs pages reaches a file that exists, and every
anchor a heading of the page it names (as GitHub and the site slug headings)."""
import re

from benchmarks import docs_tables

LINK = re.compile(r"\]\(([^)\s]+)\)")


def slug(heading):
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return re.sub(r" ", "-", text)


def anchors(path):
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
    return {slug(h) for h in re.findall(r"^#+ (.+)$", text, flags=re.M)}


def broken(page):
    out = []
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            out.append(target)
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            out.append(target)
    return out


def test_every_link_and_anchor_resolves():
    bad = {p.name: broken(p) for p in docs_tables.pages()}
    assert not {k: v for k, v in bad.items() if v}, bad


def test_a_missing_anchor_or_page_is_found(tmp_path):
    (tmp_path / "a.md").write_text("# Title\n## After a torch upgrade\n")
    page = tmp_path / "b.md"
    page.write_text("[ok](a.md#after-a-torch-upgrade) [no](a.md#before) [gone](c.md) [self](#x)\n"
                    "# X\n")
    assert broken(page) == ["a.md#before", "c.md"]


def test_the_api_page_shows_every_public_name():
    import horovod_ext
    api = (docs_tables.ROOT / "docs" / "api.md").read_text()
    shown = set(re.findall(r"^::: horovod_ext\.([\w.]+)", api, flags=re.M))
    missing = [n for n in horovod_ext.__all__ if n != "__version__" and not any(
        s == n or s.endswith("." + n) or s.split(".")[0] == n.lower() for s in shown)]
    assert not missing, f"add to docs/api.md: {missing}"
