from django.conf import settings
from django.utils.functional import SimpleLazyObject

from casework import rules


def roles(request):
    """The signed-in user's roles, computed only if a template uses them."""
    return {
        "user_roles": SimpleLazyObject(lambda: rules.user_roles(request.user)),
        "SITE_TITLE": settings.SITE_TITLE,
    }
