-- Path ids are cached by every worker (counting/store.py) on the promise that an id,
-- once given, never changes. Purging or merging paths on the settings pages breaks that
-- promise for the paths they remove, so they move this number on; a worker whose cache
-- was filled under an older number empties it before it counts again.
CREATE TABLE id_epoch (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    epoch   INTEGER NOT NULL
);
INSERT INTO id_epoch (id, epoch) VALUES (1, 0);
