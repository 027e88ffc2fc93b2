"""Fetching a territory's open data from its publishers, dated and cached.

One module per concern: :mod:`~observatoire.acquisition.urls` (every publisher URL),
:mod:`~observatoire.acquisition.http` (checked, resumable downloads),
:mod:`~observatoire.acquisition.cache` (the cache and its manifests),
:mod:`~observatoire.acquisition.territoire` (``init`` and the territory file), one
module per publisher (:mod:`~observatoire.acquisition.cadastre`,
:mod:`~observatoire.acquisition.zonage`, :mod:`~observatoire.acquisition.friches`,
:mod:`~observatoire.acquisition.bdtopo`, :mod:`~observatoire.acquisition.bdalti`,
:mod:`~observatoire.acquisition.sirene`, :mod:`~observatoire.acquisition.georisques`,
:mod:`~observatoire.acquisition.patrinat`), and
:mod:`~observatoire.acquisition.telecharger`, which runs them.
"""
