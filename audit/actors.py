"""The named actor of what the platform does by itself (deadlines, reminders, e-mails, seeding)."""

from django.contrib.auth import get_user_model

SYSTEM_USERNAME = "plateforme@systeme.invalid"


def system_actor():
    """The platform's own account: inactive, no usable password, never a person."""
    user, _created = get_user_model().objects.get_or_create(
        username=SYSTEM_USERNAME,
        defaults={
            "first_name": "Plateforme",
            "last_name": "(automatique)",
            "email": "",
            "is_active": False,
            "password": "!",
        },
    )
    return user
