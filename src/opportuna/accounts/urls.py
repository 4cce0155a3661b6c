from django.contrib.auth import views as auth_views
from django.urls import path, reverse_lazy

from opportuna.accounts import views, views_tokens

app_name = "accounts"

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path(
        "password/",
        auth_views.PasswordChangeView.as_view(
            success_url=reverse_lazy("accounts:password_change_done")
        ),
        name="password_change",
    ),
    path(
        "password/done/",
        auth_views.PasswordChangeDoneView.as_view(),
        name="password_change_done",
    ),
    path("language/", views.language, name="language"),
]

# My account: profile and personal API tokens.
urlpatterns += [
    path("me/", views_tokens.my_account, name="my_account"),
    path("me/tokens/new/", views_tokens.token_new, name="token_create"),
    path("me/tokens/<int:pk>/revoke/", views_tokens.token_revoke, name="token_revoke"),
]
