"""Aggregation of every site's events (Kafka) into windowed figures: ``heritage-audio aggregate``.

It consumes events, like a sink: it imports ``sinks`` (topic names, Kafka client options)
and nothing from the API.
"""
