from opportuna.sales.views import todo

app_name = "sales"

# Each screen's module owns its URL patterns; this list only gathers them.
urlpatterns = [*todo.urlpatterns]
