from opportuna.integrations.views import exports, imports

app_name = "integrations"

# Each screen's module owns its URL patterns; this list only gathers them.
urlpatterns = [*imports.urlpatterns, *exports.urlpatterns]
