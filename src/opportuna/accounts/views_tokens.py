"""My account: my name, email and language, and my personal API tokens.

A new token's full text is shown once, on the page that answers its creation, and never
stored, logged or put in a message (messages live in the session or a cookie).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from opportuna.accounts.models import ApiToken, User
from opportuna.accounts.services import AccountRuleError, user_update
from opportuna.accounts.tokens import api_token_create, api_token_revoke

REFUSALS = (AccountRuleError, PermissionDenied)
PROFILE_FIELDS = ("first_name", "last_name", "email", "language")


class ProfileForm(forms.Form):
    first_name = forms.CharField(label=gettext_lazy("First name"), max_length=150, required=False)
    last_name = forms.CharField(label=gettext_lazy("Last name"), max_length=150, required=False)
    email = forms.EmailField(label=gettext_lazy("Email"), required=False)
    language = forms.ChoiceField(
        label=gettext_lazy("Language"),
        required=False,
        choices=lambda: [("", _("Follow the browser")), *settings.LANGUAGES],
    )


class TokenForm(forms.Form):
    name = forms.CharField(
        label=gettext_lazy("Name"),
        max_length=100,
        help_text=gettext_lazy("What it is for, e.g. “ERP sync”."),
    )
    read_only = forms.BooleanField(
        label=gettext_lazy("Read-only"),
        required=False,
        help_text=gettext_lazy("It can read what you see, and change nothing."),
    )
    expires_in_days = forms.IntegerField(
        label=gettext_lazy("Expires after (days)"),
        required=False,
        min_value=1,
        max_value=3650,
        widget=forms.NumberInput(attrs={"size": 5, "inputmode": "numeric"}),
        help_text=gettext_lazy("Empty: it never expires (you can revoke it any time)."),
    )


def my_api_tokens(*, user: User) -> QuerySet[ApiToken]:
    """My tokens, newest first (1 query); never their hash."""
    return ApiToken.objects.filter(user=user).defer("hash").order_by("-created_at", "-pk")


def _profile_initial(user: User) -> dict[str, Any]:
    return {name: getattr(user, name) for name in PROFILE_FIELDS}


def _render_account(
    request: HttpRequest,
    *,
    profile_form: ProfileForm | None = None,
    token_form: TokenForm | None = None,
    status: int = 200,
) -> HttpResponse:
    context = {
        "profile_form": profile_form or ProfileForm(initial=_profile_initial(request.user)),
        "token_form": token_form or TokenForm(auto_id="id_token_%s"),
        "tokens": my_api_tokens(user=request.user),
        "now": timezone.now(),
    }
    return render(request, "accounts/my_account.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def my_account(request: HttpRequest) -> HttpResponse:
    """My profile (saved through `user_update` on myself) and my API tokens."""
    if request.method != "POST":
        return _render_account(request)
    form = ProfileForm(request.POST, initial=_profile_initial(request.user))
    if form.is_valid():
        values = {name: form.cleaned_data[name] for name in form.changed_data}
        try:
            user_update(user=request.user, actor=request.user, **values)
        except REFUSALS as error:
            field = getattr(error, "field", None)
            form.add_error(field if field in form.fields else None, str(error))
            request.user.refresh_from_db()
        else:
            messages.success(request, _("Your details are saved."))
            return redirect("accounts:my_account")
    return _render_account(request, profile_form=form, status=422)


@never_cache
@login_required
@require_POST
def token_new(request: HttpRequest) -> HttpResponse:
    """Create a token and show it, this once."""
    form = TokenForm(request.POST, auto_id="id_token_%s")
    if form.is_valid():
        days = form.cleaned_data["expires_in_days"]
        try:
            token, raw = api_token_create(
                actor=request.user,
                user=request.user,
                name=form.cleaned_data["name"],
                read_only=form.cleaned_data["read_only"],
                expires_at=timezone.now() + timedelta(days=days) if days else None,
            )
        except REFUSALS as error:
            field = getattr(error, "field", None)
            form.add_error(field if field in form.fields else None, str(error))
        else:
            context = {"token": token, "raw": raw}
            return render(request, "accounts/token_created.html", context)
    return _render_account(request, token_form=form, status=422)


@login_required
@require_http_methods(["GET", "POST"])
def token_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    """Ask, then revoke one of my tokens; someone else's answers 404."""
    token = get_object_or_404(my_api_tokens(user=request.user), pk=pk)
    if request.method == "POST":
        api_token_revoke(actor=request.user, token=token)
        messages.success(request, _("Token “%(name)s” revoked.") % {"name": token})
        return redirect("accounts:my_account")
    return render(request, "accounts/token_revoke.html", {"token": token})
