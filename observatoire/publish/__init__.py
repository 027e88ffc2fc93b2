"""Publication: maps, report, QGIS styles and project."""
