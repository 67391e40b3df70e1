"""The modelratchet command line (also the kubectl plugin ``kubectl modelratchet``)."""
