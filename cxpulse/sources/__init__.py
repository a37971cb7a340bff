"""Sources: converters from what contact-centre platforms write (Asterisk's queue_log, Amazon Connect contact
trace records) to contract events, outside the engine.

Why outside: the engine consumes only the contract (``docs/events.md``); a platform's own format, its quirks
and its versions stay here, where a converter can be tested line by line and replaced without touching the
KPI core. Each source module turns one input unit (a line, a record) into validated events or a rejection;
:mod:`.outputs` writes them to Kafka (batched, acknowledged before the input position moves on) or to files.
"""
