"""The daemon's memory: the Store protocol and FileRecord, its backends, and open_store."""

from runwatchd.store.base import OwnerInfo, Signature, Store, StoreView
from runwatchd.store.open import open_store, open_view
from runwatchd.store.record import FileRecord

__all__ = ["FileRecord", "OwnerInfo", "Signature", "Store", "StoreView", "open_store",
           "open_view"]
