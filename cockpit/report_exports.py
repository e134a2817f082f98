"""The CLEFOP report as files: XLSX (openpyxl) and CSV for a French spreadsheet (UTF-8 with BOM,
« ; »). Both are built from the same lines (`lines`), which read `Figure.shown`: a suppressed
figure is the text « < 3 » in every format. Text cells never start a formula (`safe_cell`)."""

import csv
import io

from django.utils.formats import date_format, number_format
from django.utils.translation import gettext as _
from openpyxl import Workbook
from openpyxl.styles import Font

from casework.selectors import SMALL_COUNT
from casework.spreadsheet import safe_cell
from cockpit.report import COUNT, DAYS, PERCENT, Report

XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _day(day) -> str:
    return date_format(day, "SHORT_DATE_FORMAT")


def period_label(start, end) -> str:
    return _("%(start)s to %(end)s") % {"start": _day(start), "end": _day(end)}


def sites_label(report: Report) -> str:
    names = ", ".join(site.name for site in report.sites)
    return _("All my sites (%(sites)s)") % {"sites": names} if report.all_sites else names


def unit_label(unit: str) -> str:
    return {COUNT: _("number"), DAYS: _("business days"), PERCENT: "%"}[unit]


def heading(report: Report) -> list[list[str]]:
    """The lines above the table: what, where, when, and the suppression rule when it applies."""
    lines = [
        [_("CLEFOP report")],
        [_("Pilot sites"), sites_label(report)],
        [_("Period"), period_label(report.start, report.end)],
        [_("Previous period"), period_label(report.previous_start, report.previous_end)],
    ]
    if report.masked:
        lines.append(
            [
                _("« %(small)s »: figure drawn from fewer than 3 companies, not shown.")
                % {"small": SMALL_COUNT}
            ]
        )
    return lines


def columns(report: Report) -> list[str]:
    return [
        _("Section"),
        _("Indicator"),
        _("Unit"),
        _("Period (%(dates)s)") % {"dates": period_label(report.start, report.end)},
        _("Previous period (%(dates)s)")
        % {"dates": period_label(report.previous_start, report.previous_end)},
    ]


def lines(report: Report):
    """(section, indicator, unit, current, previous) per row; a detail row is named after the row
    it details (« Declines — No capacity now »). Numbers stay numbers; « < 3 » and None as given."""
    for section in report.sections:
        parent = ""
        for row in section.rows:
            if row.level == 0:
                parent = row.label
                label = row.label
            else:
                label = f"{parent} — {row.label}" if parent else row.label
            yield section.title, label, unit_label(row.unit), row.current.shown, row.previous.shown


def to_xlsx(report: Report) -> bytes:
    workbook = Workbook()
    sheet = workbook.active
    sheet.title = _("CLEFOP report")[:31]
    for line in heading(report):
        sheet.append([safe_cell(str(text)) for text in line])
    sheet["A1"].font = Font(bold=True, size=14)
    sheet.append([])
    sheet.append([safe_cell(text) for text in columns(report)])
    for cell in sheet[sheet.max_row]:
        cell.font = Font(bold=True)
    for section, label, unit, current, previous in lines(report):
        sheet.append(
            [safe_cell(section), safe_cell(label), safe_cell(unit), *map(_xlsx_value, (current, previous))]
        )
        for cell in sheet[sheet.max_row][3:]:
            if isinstance(cell.value, float):
                cell.number_format = "0.0"
    for letter, width in zip("ABCDE", (30, 60, 14, 28, 28), strict=True):
        sheet.column_dimensions[letter].width = width
    output = io.BytesIO()
    workbook.save(output)
    return output.getvalue()


def _xlsx_value(value):
    """A number as a number cell, « < 3 » as text, nothing as an empty cell."""
    if value is None or isinstance(value, int | float):
        return value
    return safe_cell(str(value))


def to_csv(report: Report) -> str:
    output = io.StringIO()
    output.write("\ufeff")  # the BOM: Excel then reads UTF-8
    writer = csv.writer(output, delimiter=";")
    for line in heading(report):
        writer.writerow([safe_cell(str(text)) for text in line])
    writer.writerow([])
    writer.writerow([safe_cell(text) for text in columns(report)])
    for section, label, unit, current, previous in lines(report):
        writer.writerow(
            [safe_cell(section), safe_cell(label), safe_cell(unit), _csv_value(current), _csv_value(previous)]
        )
    return output.getvalue()


def _csv_value(value) -> str:
    """Numbers as a French spreadsheet reads them (decimal comma, no grouping)."""
    if value is None:
        return ""
    if isinstance(value, float):
        return number_format(value, 1, use_l10n=True, force_grouping=False)
    if isinstance(value, int):
        return str(value)
    return safe_cell(str(value))
