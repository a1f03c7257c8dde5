"""The web app's logic, kept apart from its Gradio layout (`app.py`) so it can be tested without a server.

    examples     sample photo pairs from the offline data sets, written to the cache as PNG at start
    uploads      reading uploaded photos, and deleting them once the last request needing them is over
    settings     the app's limits in one object (queue, jobs at once, CPU time, pixels), from the environment
    limits       the CPU-time cap of one request
    workspace    this run's folder on disk, and deleting what crashed runs left
    comparisons  model comparisons over data sets, computed once and kept (memory and disk)
    handlers     the app's events: thin calls into explainer.jobs.pipeline that shape results for the UI
    about        the About tab: what the method claims, model cards, licences
"""
