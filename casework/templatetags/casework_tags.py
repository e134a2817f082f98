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
