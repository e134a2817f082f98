from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class NotificationsConfig(AppConfig):
    name = "notifications"
    verbose_name = _("Notifications")

    def ready(self):
        from django.contrib.auth import get_user_model
        from django.contrib.auth.signals import user_logged_out
        from django.db.models.signals import post_delete, post_save

        from casework.models import SiteAnimator
        from notifications import delivery

        def on_logout(sender, request, user, **kwargs):
            if user is not None:
                delivery.revoke_after_commit(user.pk)

        def on_user_saved(sender, instance, created, **kwargs):
            if not created and not instance.is_active:
                delivery.revoke_after_commit(instance.pk)

        # Signals only for this cross-cutting concern: open sockets close within a second of a
        # logout or a deactivation, whatever code path caused it.
        user_logged_out.connect(on_logout, weak=False, dispatch_uid="notifications-revoke-on-logout")
        post_save.connect(
            on_user_saved,
            sender=get_user_model(),
            weak=False,
            dispatch_uid="notifications-revoke-on-deactivation",
        )

        def on_assignment_changed(sender, instance, **kwargs):
            delivery.rights_changed_after_commit(instance.user_id)

        # A new or removed animator assignment changes the boards the user's sockets follow.
        for signal in (post_save, post_delete):
            signal.connect(
                on_assignment_changed,
                sender=SiteAnimator,
                weak=False,
                dispatch_uid=f"notifications-boards-{signal is post_save}",
            )
