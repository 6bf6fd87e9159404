"""Reading the rendered tables back: Markdown pipe tables, cells without emphasis."""
import re


def markdown_tables(text: str) -> list[list[list[str]]]:
    """Every pipe table in a Markdown text, as rows of cells (header first, separator dropped)."""
    tables, current = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            current.append(line)
        elif current:
            tables.append(current)
            current = []
    parsed = []
    for rows in tables:
        cells = [[c.strip() for c in re.split(r"(?<!\\)\|", row)[1:-1]] for row in rows]
        assert len({len(r) for r in cells}) == 1, f"ragged table: {rows}"
        assert all(re.fullmatch(r":?-{3,}:?", c) for c in cells[1]), f"no separator row: {rows[1]}"
        parsed.append([cells[0]] + cells[2:])
    return parsed


def plain(cell: str) -> str:
    return cell.replace("**", "").replace("†", "")
