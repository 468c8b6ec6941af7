"""What every source reader shares, one concern a module.

``bad_records`` (the bad-record policy and its rejects table), ``options`` (reader arguments and
typed options), ``annotations`` (annotation files and record field checks), ``csv_rows`` (CSV
annotation files), ``images`` (image probing and the image catalogue), ``records`` (tables, ids,
splits, text and modality helpers), ``reader`` (what a reader yields).
"""
