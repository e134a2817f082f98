from django.contrib.auth.forms import AuthenticationForm
from django.core.validators import MaxLengthValidator
from dsfr.forms import DsfrBaseForm

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
