"""Cells written to files opened by a spreadsheet (CSV, XLSX exports)."""

# A spreadsheet runs a cell starting with one of these as a formula (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: str) -> str:
    """The text as a spreadsheet shows it, never run as a formula (a leading quote)."""
    return f"'{value}" if value.startswith(FORMULA_STARTS) else value
