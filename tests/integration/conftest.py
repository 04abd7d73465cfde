"""Fixtures every integration test can use: real Apache httpd instances (tests/support/apache_fixtures.py)."""

from tests.support.apache_fixtures import apache, apache_factory

__all__ = ["apache", "apache_factory"]
