import math

from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError
from django.core.validators import MaxLengthValidator
from django.utils.translation import ngettext
from dsfr.forms import DsfrBaseForm

from casework import login_throttle

PASSWORD_MAX_LENGTH = 1024


class LoginForm(DsfrBaseForm, AuthenticationForm):
    """Django's login form rendered with the State design system."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # AuthenticationForm sets the username's max_length after the field is built, so that it is
        # not checked: a longer name went on to authenticate(), and django-axes' record of the
        # failure (a 255-character column) ended in a server error on PostgreSQL. No account has
        # a longer name: refused here, with Django's usual message.
        username = self.fields["username"]
        username.validators.append(MaxLengthValidator(username.max_length))
        # Hashing is slow on purpose: a password of megabytes would keep a worker busy. No real
        # password is longer than this.
        self.fields["password"].max_length = PASSWORD_MAX_LENGTH
        self.fields["password"].validators.append(MaxLengthValidator(PASSWORD_MAX_LENGTH))

    # Seconds this attempt was told to wait (casework.login_throttle); 0 when it was not throttled.
    throttled_for = 0

    def clean(self):
        """The account's throttle across addresses first: a throttled attempt is refused before its
        password is checked (no hashing, no failure recorded, nothing learnt)."""
        username = self.cleaned_data.get("username")
        if username and self.request is not None:
            wait = login_throttle.seconds_to_wait(self.request, username)
            if wait:
                self.throttled_for = wait
                minutes = math.ceil(wait / 60)
                raise ValidationError(
                    ngettext(
                        "Too many sign-ins failed on this account, from several addresses. For its "
                        "safety, wait %(minutes)d minute before trying again. From a computer where "
                        "you signed in recently, you can try again now.",
                        "Too many sign-ins failed on this account, from several addresses. For its "
                        "safety, wait %(minutes)d minutes before trying again. From a computer where "
                        "you signed in recently, you can try again now.",
                        minutes,
                    )
                    % {"minutes": minutes},
                    code="account_throttled",
                )
        return super().clean()
