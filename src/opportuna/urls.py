from django.contrib import admin
from django.urls import include, path

from opportuna.api import api

admin.site.site_header = "Opportuna"
admin.site.site_title = "Opportuna"

urlpatterns = [
    path("accounts/", include("opportuna.accounts.urls")),
    path("admin/", admin.site.urls),
    path("api/v1/", api.urls),
    path("insights/", include("opportuna.insights.urls")),
    path("integrations/", include("opportuna.integrations.urls")),
    path("", include("opportuna.sales.urls")),
]
