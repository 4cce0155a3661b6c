"""Placeholder: this screen's views and `urlpatterns` are being built."""

from django.urls import URLPattern

urlpatterns: list[URLPattern] = []
