from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import activate, check_for_language
from django.views.decorators.http import require_POST

from opportuna.accounts.services import user_update


def _safe_next(request: HttpRequest) -> str:
    target = request.POST.get("next") or "/"
    if url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return "/"


@require_POST
def language(request: HttpRequest) -> HttpResponse:
    """Switch the interface language; remembered on the user, and in a cookie before login."""
    code = request.POST.get("language", "")
    response = HttpResponseRedirect(_safe_next(request))
    if not code or not check_for_language(code):
        return response
    if request.user.is_authenticated:
        user_update(user=request.user, actor=request.user, language=code)
    activate(code)
    response.set_cookie(
        settings.LANGUAGE_COOKIE_NAME, code, max_age=365 * 24 * 3600, samesite="Lax"
    )
    return response
