"""Charts of the CLEFOP report, drawn on the server as SVG: no script, no external service, no
inline style (the content security policy refuses them; SVG presentation attributes are used).

Each chart has a <title> and a <desc> and is read with `role="img"`; the page shows the same
figures in a table beside it. A suppressed figure (« < 3 ») is drawn as no bar, with its label."""

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _

CURRENT_COLOUR = "#000091"  # DSFR blue France (--blue-france-sun-113-625)
PREVIOUS_COLOUR = "#929292"  # DSFR grey (--grey-625-425)
TEXT_COLOUR = "#161616"
AXIS_COLOUR = "#666666"
FONT = "Marianne, arial, sans-serif"


def _number(figure) -> float:
    """The length a figure is drawn with: 0 when suppressed or empty."""
    if figure.suppressed or figure.value is None:
        return 0
    return float(figure.value)


def _label(figure) -> str:
    shown = figure.shown
    if shown is None:
        return "–"
    if isinstance(shown, float):
        return f"{shown:g}"
    return str(shown)


def _legend(y: int) -> SafeString:
    return format_html(
        '<g font-size="12" fill="{text}">'
        '<rect x="0" y="{y}" width="12" height="12" fill="{current}"/>'
        '<text x="18" y="{ty}">{current_label}</text>'
        '<rect x="170" y="{y}" width="12" height="12" fill="{previous}"/>'
        '<text x="188" y="{ty}">{previous_label}</text></g>',
        text=TEXT_COLOUR,
        y=y,
        ty=y + 10,
        current=CURRENT_COLOUR,
        previous=PREVIOUS_COLOUR,
        current_label=_("Period"),
        previous_label=_("Previous period"),
    )


def _join(parts) -> SafeString:
    return format_html_join("", "{}", ((part,) for part in parts))


def _frame(ident, width, height, title, desc, body) -> SafeString:
    return format_html(
        '<svg xmlns="http://www.w3.org/2000/svg" class="report-chart" role="img" viewBox="0 0 {w} {h}" '
        'width="100%" preserveAspectRatio="xMinYMin meet" font-family="{font}" '
        'aria-labelledby="{id}-title {id}-desc">'
        '<title id="{id}-title">{title}</title><desc id="{id}-desc">{desc}</desc>{body}</svg>',
        w=width,
        h=height,
        font=FONT,
        id=ident,
        title=title,
        desc=desc,
        body=body,
    )


def horizontal_bars(rows, *, ident: str, title: str, desc: str) -> SafeString:
    """One line per row (label on the left), the period's bar above the previous period's."""
    label_width, bar_width, value_width = 190, 330, 60
    line, bar = 34, 13
    top = 28
    width = label_width + bar_width + value_width
    height = top + line * len(rows) + 8
    largest = max([_number(row.current) for row in rows] + [_number(row.previous) for row in rows] + [1])
    parts = [_legend(4)]
    for index, row in enumerate(rows):
        y = top + index * line
        parts.append(
            format_html(
                '<text x="{x}" y="{y}" font-size="12" fill="{text}" text-anchor="end">{label}</text>',
                x=label_width - 8,
                y=y + bar + 4,
                text=TEXT_COLOUR,
                label=row.label,
            )
        )
        for offset, figure, colour in (
            (0, row.current, CURRENT_COLOUR),
            (bar, row.previous, PREVIOUS_COLOUR),
        ):
            length = round(bar_width * _number(figure) / largest, 1)
            parts.append(
                format_html(
                    '<rect x="{x}" y="{y}" width="{w}" height="{h}" fill="{colour}"/>'
                    '<text x="{tx}" y="{ty}" font-size="11" fill="{text}">{value}</text>',
                    x=label_width,
                    y=y + offset,
                    w=length,
                    h=bar - 1,
                    colour=colour,
                    tx=label_width + length + 4,
                    ty=y + offset + bar - 3,
                    text=TEXT_COLOUR,
                    value=_label(figure),
                )
            )
    parts.append(
        format_html(
            '<line x1="{x}" y1="{y1}" x2="{x}" y2="{y2}" stroke="{axis}" stroke-width="1"/>',
            x=label_width,
            y1=top - 2,
            y2=height - 6,
            axis=AXIS_COLOUR,
        )
    )
    return _frame(ident, width, height, title, desc, _join(parts))


def histogram(rows, *, ident: str, title: str, desc: str) -> SafeString:
    """One group of two columns per bin (the period's, then the previous period's), bins in order."""
    left, plot_height, top = 10, 160, 28
    group, column = 90, 30
    width = left + group * len(rows) + 10
    height = top + plot_height + 40
    base = top + plot_height
    largest = max([_number(row.current) for row in rows] + [_number(row.previous) for row in rows] + [1])
    parts = [_legend(4)]
    for index, row in enumerate(rows):
        x = left + index * group + 10
        for offset, figure, colour in (
            (0, row.current, CURRENT_COLOUR),
            (column + 4, row.previous, PREVIOUS_COLOUR),
        ):
            length = round((plot_height - 16) * _number(figure) / largest, 1)
            parts.append(
                format_html(
                    '<rect x="{x}" y="{y}" width="{w}" height="{h}" fill="{colour}"/>'
                    '<text x="{tx}" y="{ty}" font-size="11" fill="{text}" '
                    'text-anchor="middle">{value}</text>',
                    x=x + offset,
                    y=base - length,
                    w=column,
                    h=length,
                    colour=colour,
                    tx=x + offset + column / 2,
                    ty=base - length - 4,
                    text=TEXT_COLOUR,
                    value=_label(figure),
                )
            )
        parts.append(
            format_html(
                '<text x="{x}" y="{y}" font-size="11" fill="{text}" text-anchor="middle">{label}</text>',
                x=x + column + 2,
                y=base + 16,
                text=TEXT_COLOUR,
                label=row.label,
            )
        )
    parts.append(
        format_html(
            '<line x1="{x1}" y1="{y}" x2="{x2}" y2="{y}" stroke="{axis}" stroke-width="1"/>',
            x1=left,
            x2=width - 4,
            y=base,
            axis=AXIS_COLOUR,
        )
    )
    return _frame(ident, width, height, title, desc, _join(parts))
