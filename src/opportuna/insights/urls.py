from opportuna.insights.views import analysis, forecast, statistics

app_name = "insights"

# Each screen's module owns its URL patterns; this list only gathers them.
urlpatterns = [*forecast.urlpatterns, *statistics.urlpatterns, *analysis.urlpatterns]
