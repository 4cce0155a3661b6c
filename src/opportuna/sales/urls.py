from opportuna.sales.views import (
    board,
    clients,
    opportunity,
    opportunity_list,
    search,
    settings,
    todo,
)

app_name = "sales"

# Each screen's module owns its URL patterns; this list only gathers them.
urlpatterns = [
    *todo.urlpatterns,
    *board.urlpatterns,
    *opportunity_list.urlpatterns,
    *opportunity.urlpatterns,
    *clients.urlpatterns,
    *search.urlpatterns,
    *settings.urlpatterns,
]
