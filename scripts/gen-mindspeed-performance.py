"""Generate reference/mindspeed-llm/performance.json: the performance tables MindSpeed-LLM publishes, row by row,
with the file, commit and line each row is on.

Read from the bare git mirror of github.com/Ascend/MindSpeed-LLM (the `fetch` tool's copy):
  * README.md of each supported version (those whose flags are generated): the pretraining MFU table and the
    fine-tuning table (samples/s and MFU), HTML tables;
  * docs/en/pytorch/features/README.md where the branch has one (26.0.0 on): the "Throughput (Tokens/s)" tables;
  * tag v1.0.RC3.0 README.md: the last per-model tokens/p/s table (Atlas 900 A2 PODc), ModelLink's format.

Only tables whose header names a measurement (MFU, throughput, 性能 = performance) are kept. Cells spanning
rows (rowspan) are repeated into each row they cover, as a reader sees them. Each row keeps the link of each
cell (the example script a figure was measured with, where the table links one).

Usage: python3 scripts/gen-mindspeed-performance.py [MIRROR_GIT_DIR] [OUT]
"""

import json
import os
import subprocess
import sys
from html.parser import HTMLParser

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Per version whose flags are generated (reference/mindspeed-llm/flags/<version>.json): its README.md and, where the
# branch has it, its features README; then the last tokens/p/s table (ModelLink's format).
FEATURES_README = 'docs/en/pytorch/features/README.md'
LAST_TOKENS_TABLE = ('v1.0.RC3.0', 'README.md')


def sources(git) -> list[tuple[str, str]]:
    flags_dir = os.path.join(ROOT, 'reference', 'mindspeed-llm', 'flags')
    versions = sorted((f[:-5] for f in os.listdir(flags_dir) if f.endswith('.json')),
                      key=lambda v: tuple(int(x) for x in v.split('.')))
    out = []
    for v in versions:
        out.append((v, 'README.md'))
        if git('ls-tree', '--name-only', v, '--', FEATURES_README).strip():
            out.append((v, FEATURES_README))
    return out + [LAST_TOKENS_TABLE]
MEASURES = ('MFU', 'Throughput', '性能', 'tokens')


class Tables(HTMLParser):
    """Collects <table>s: header names, and rows of (text, href) cells with rowspans, and each row's line."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: list[dict] = []
        self.table: dict | None = None
        self.row: list | None = None
        self.cell: dict | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        if tag == 'table':
            self.table = {'line': self.getpos()[0], 'rows': []}
        elif tag == 'tr' and self.table is not None:
            self.row = []
            self.table['rows'].append({'line': self.getpos()[0], 'cells': self.row})
        elif tag in ('td', 'th') and self.row is not None:
            self.cell = {'tag': tag, 'text': '', 'href': None, 'rowspan': int(a.get('rowspan') or 1),
                         'colspan': int(a.get('colspan') or 1)}
            self.row.append(self.cell)
        elif tag == 'a' and self.cell is not None and self.cell['href'] is None:
            self.cell['href'] = a.get('href')

    def handle_endtag(self, tag: str) -> None:
        if tag in ('td', 'th'):
            self.cell = None
        elif tag == 'table' and self.table is not None:
            self.tables.append(self.table)
            self.table = None

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell['text'] += data


def expand(table: dict) -> tuple[list[str], list[dict]]:
    """Header names and the body rows, rowspans filled in."""
    rows = [r for r in table['rows'] if r['cells']]
    if not rows:
        return [], []
    header = [' '.join(c['text'].split()) for c in rows[0]['cells']]
    carry: dict[int, tuple[int, dict]] = {}  # column -> (rows left, cell)
    out = []
    for r in rows[1:]:
        cells = iter(r['cells'])
        filled: list[dict] = []
        col = 0
        while col < len(header):
            if col in carry and carry[col][0] > 0:
                left, cell = carry[col]
                carry[col] = (left - 1, cell)
                filled.append(cell)
                col += 1
                continue
            cell = next(cells, None)
            if cell is None:
                break
            for _ in range(cell['colspan']):
                if cell['rowspan'] > 1:
                    carry[col] = (cell['rowspan'] - 1, cell)
                filled.append(cell)
                col += 1
        out.append({'line': r['line'], 'cells': [' '.join(c['text'].split()) for c in filled],
                    'links': [c['href'] for c in filled]})
    return header, out


def title_before(lines: list[str], line: int) -> str:
    """The nearest heading or bracketed caption above a table (what the README calls it)."""
    for i in range(line - 2, max(line - 30, -1), -1):
        s = lines[i].strip()
        if s.startswith('#') or s.startswith('【') or (s.endswith('：') and len(s) < 80) or (s.endswith(':') and len(s) < 120):
            return s.lstrip('#').strip()
    return ''


def main() -> None:
    git_dir = sys.argv[1] if len(sys.argv) > 1 else '/work/.mirror/Ascend+MindSpeed-LLM/repo'
    out_path = sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, 'reference', 'mindspeed-llm', 'performance.json')

    def git(*args: str) -> str:
        return subprocess.run(['git', '--git-dir', git_dir, *args], check=True, capture_output=True, text=True).stdout

    tables = []
    for ref, path in sources(git):
        commit = git('rev-list', '-n', '1', ref, '--').strip()
        text = git('show', f'{commit}:{path}')
        parser = Tables()
        parser.feed(text)
        lines = text.split('\n')
        for t in parser.tables:
            header, rows = expand(t)
            if not any(m.lower() in h.lower() for h in header for m in MEASURES):
                continue
            tables.append({'ref': ref, 'commit': commit, 'file': path, 'table_line': t['line'],
                           'title': title_before(lines, t['line']), 'columns': header, 'rows': rows})
    doc = {
        'msl_repo': 'github.com/Ascend/MindSpeed-LLM (upstream gitcode.com/Ascend/MindSpeed-LLM)',
        'generator': 'scripts/gen-mindspeed-performance.py',
        'format_notes': [
            'One entry per published table: ref (branch or tag), commit, file, table_line, title (the caption above it), '
            'columns (header texts), rows: {line, cells (texts, rowspans filled in), links (href of each cell or null)}.',
            'Units are as the tables say: MFU in %, "Throughput (Tokens/s)" per the 26.0.0 features README, '
            'samples/s for fine-tuning, tokens/p/s (per NPU) in the v1.0.RC3.0 table.',
            'Training logs do not print tokens/s: elapsed time per iteration and, with --log-throughput, TFLOP/s/GPU '
            '(reference doc section 6); tokens/s/p = global batch size x sequence length / (iteration time x world size).',
        ],
        'tables': tables,
    }
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    with open(out_path, 'w') as f:
        json.dump(doc, f, indent=1, ensure_ascii=False)
        f.write('\n')
    print({(t['ref'], t['file'], t['table_line']): len(t['rows']) for t in tables})


if __name__ == '__main__':
    main()
