"""str() of the pandas DataFrame evaluation.py logs: columns subject / question_n / acc.

Reproduces pandas' default to_string layout for an object, an int64 and a float64 column:
values get a leading space, numeric headers too, columns are right-justified and joined by a
space, the RangeIndex is left-justified, floats use 6 decimals with common trailing zeros
trimmed, and more than 60 rows are truncated to 5 + 5 with a `...` row.
"""
import re

_NUMBER = re.compile(r'^\s*[+-]?[0-9]+\.[0-9]*$')


def _trim_zeros(values):
    def should_trim(vals):
        numbers = [v for v in vals if _NUMBER.match(v)]
        return len(numbers) > 0 and all(v.endswith('0') for v in numbers)

    while should_trim(values):
        values = [v[:-1] if _NUMBER.match(v) else v for v in values]
    return [v + '0' if _NUMBER.match(v) and v.endswith('.') else v for v in values]


def format_scores(rows, columns=('subject', 'question_n', 'acc')):
    """rows: [[subject:str, question_n:int, acc:float], ...]"""
    if not rows:
        return 'Empty DataFrame\nColumns: [{}]\nIndex: []'.format(', '.join(columns))
    index = [str(i) for i in range(len(rows))]
    truncated = len(rows) > 60
    shown = list(range(len(rows)))
    if truncated:
        shown = list(range(5)) + list(range(len(rows) - 5, len(rows)))

    subject = [' ' + str(rows[i][0]) for i in shown]
    count = [' ' + str(int(rows[i][1])) for i in shown]
    acc = _trim_zeros([' {:.6f}'.format(float(rows[i][2])) for i in shown])
    idx = [index[i] for i in shown]
    if truncated:
        for col in (subject, count, acc):
            col.insert(5, '...')
        idx.insert(5, '..')

    cols = []
    for header, values in ((columns[0], subject), (' ' + columns[1], count), (' ' + columns[2], acc)):
        width = max(len(header), *(len(v) for v in values))
        cols.append([header.rjust(width)] + [v.rjust(width) for v in values])
    index_width = max(len(i) for i in idx)
    index_col = [''.ljust(index_width)] + [i.ljust(index_width) for i in idx]
    lines = [' '.join([index_col[r]] + [c[r] for c in cols]) for r in range(len(index_col))]
    out = '\n'.join(lines)
    if truncated:
        out += '\n\n[{} rows x {} columns]'.format(len(rows), len(columns))
    return out
