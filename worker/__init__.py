"""streamrec worker: trains the User-Personalization model and publishes item embeddings.

Empty until the training issue lands; it exists now so the layout of the tree matches the
architecture (connector ingests and serves, worker trains and publishes).
"""
