"""Serving: the champion as a BentoML bento, strict request handling and the prediction log.

``records`` checks what a client sent, ``scoring`` turns accepted records into predictions through
the shared cleaning and model code, ``batching`` lets concurrent requests share model calls,
``prediction_log`` keeps every answer, ``bento`` and ``assets`` build the bento per model version.
"""
