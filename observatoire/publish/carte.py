"""Interactive map of the observatory (folium)."""

from __future__ import annotations

import geopandas as gpd
import folium

from observatoire.config import Territory
from observatoire.outputs import StagedFile

LAYER_STYLES = {
    "zonage": ("Zonage du PLU", {"color": "#8c6d31", "weight": 1, "fillOpacity": 0.1}),
    "parcelles": ("Parcelles", {"color": "#555555", "weight": 0.5, "fillOpacity": 0.05}),
    "zae": ("Zones d'activités", {"color": "#6a3d9a", "weight": 2, "fillOpacity": 0.2}),
    "friches_surfaces": ("Friches (périmètres)", {"color": "#e31a1c", "weight": 2,
                                                   "fillOpacity": 0.3}),
}


def stage_map(layers: dict[str, gpd.GeoDataFrame], territory: Territory) -> StagedFile:
    """Write ``carte.html`` to a staged file next to the GeoPackage."""
    staged = StagedFile(territory.output_dir / "carte.html")
    parcels = layers["parcelles"].to_crs(4326)
    xmin, ymin, xmax, ymax = parcels.total_bounds
    m = folium.Map(location=[(ymin + ymax) / 2, (xmin + xmax) / 2], zoom_start=13,
                   tiles=None)
    folium.TileLayer("OpenStreetMap", name="Fond OpenStreetMap").add_to(m)
    for name, (label, style) in LAYER_STYLES.items():
        frame = layers.get(name)
        if frame is None or len(frame) == 0:
            continue
        data = frame.to_crs(4326)
        folium.GeoJson(data.to_json(drop_id=True), name=label,
                       style_function=lambda _f, s=style: s).add_to(m)
    friches = layers.get("friches")
    if friches is not None and len(friches):
        fg = folium.FeatureGroup(name="Friches")
        for pt in friches.to_crs(4326).geometry:
            folium.CircleMarker([pt.y, pt.x], radius=5, color="#e31a1c").add_to(fg)
        fg.add_to(m)
    folium.LayerControl().add_to(m)
    m.fit_bounds([[ymin, xmin], [ymax, xmax]])
    m.save(str(staged.tmp))
    return staged
