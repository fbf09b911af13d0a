"""The app's panels: how a page shows what the library computed (Streamlit code only).

Each page in ``pages/`` reads as a list of these panels; the rules they show (which tables,
which identifier, which threshold, the gates) are the library's (``sqltraits_kit``), and the
session set-up is ``app_state``'s. Widget keys start with the page's name.
"""
