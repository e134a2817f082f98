from django import template

register = template.Library()

_STATE_BADGES = {
    "proposed": "fr-badge--new",
    "enrolled": "fr-badge--info",
    "diagnosed": "fr-badge--info",
    "active": "fr-badge--success",
    "follow_up": "fr-badge--success",
    "closed": "",
    "refused": "fr-badge--error",
    "withdrawn": "fr-badge--warning",
}


@register.inclusion_tag("casework/partials/state_badge.html")
def state_badge(case):
    return {"label": case.get_state_display(), "css": _STATE_BADGES.get(case.state, "")}


@register.filter
def small_count(value):
    """Aggregates shown to observers: counts of 1 or 2 become "< 3" so no company is singled out."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        return value
    return "< 3" if 0 < number < 3 else number
