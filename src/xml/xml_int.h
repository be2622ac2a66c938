/*
 * xml_int.h: what the xml module's files share and nothing outside it sees.
 */
#ifndef BATON_XML_INT_H
#define BATON_XML_INT_H

#include <expat.h>

#include "xml.h"

/*
 * tree.c: a new element in one allocation: name and namespace of the given lengths, and
 * npairs attributes from pairs (name0, value0, ...), all copied.
 */
struct xml_node *xml_el_make(const char *name, size_t namelen, const char *ns, size_t nslen,
			     const char *const *pairs, size_t npairs);

/*
 * region.c: each stream parser's expat memory in one region of its own, so that a
 * trimmed or freed parser's pages can go back to the system (region.c says why).
 */
struct xml_region;

/* expat's memory functions: blocks from the region entered on this thread, else malloc. */
extern const XML_Memory_Handling_Suite region_suite;
/* An empty region, for one parser. */
struct xml_region *region_get(void);
/* Empties r for the parser's successor, keeping its pages. */
void region_reset(struct xml_region *r);
/* Gives r back once its parser has been freed; NULL is a no-op. */
void region_put(struct xml_region *r);
/* Makes r the region this thread's expat calls allocate from; returns the previous one. */
struct xml_region *region_enter(struct xml_region *r);
void region_leave(struct xml_region *prev);

#endif
