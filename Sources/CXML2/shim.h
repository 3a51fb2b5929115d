#pragma once
// libxml2's ICU types clash with Foundation's copy on a clean build (PLATFORM.md gotcha 1).
#include <libxml/xmlversion.h>
#undef LIBXML_ICU_ENABLED
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlschemas.h>
#include <libxml/xmlregexp.h>
#include <libxml/c14n.h>
#include <libxml/xpath.h>
#include <libxml/xpathInternals.h>
#include <libxml/xmlerror.h>
#include <stdlib.h>

/// xmlFree is a global function pointer, which Swift 6 refuses to touch.
static inline void esg_xml_free(void *p) { xmlFree(p); }
