#pragma once
// libxml2's ICU types clash with Foundation's copy on a clean build (PLATFORM.md gotcha 1).
#include <libxml/xmlversion.h>
#undef LIBXML_ICU_ENABLED
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlschemas.h>
#include <libxml/xmlschemastypes.h>
#include <libxml/xmlregexp.h>
#include <libxml/c14n.h>
#include <libxml/xpath.h>
#include <libxml/xpathInternals.h>
#include <libxml/xmlerror.h>
#include <stdlib.h>

/// xmlFree is a global function pointer, which Swift 6 refuses to touch.
static inline void esg_xml_free(void *p) { xmlFree(p); }

/// C14N visibility of a subtree: a node (an attribute, a namespace node by its element) is visible when it lies
/// in the subtree of `root`. O(depth) per node, where an XPath node set costs O(set size) per lookup.
static inline int esg_c14n_in_subtree(void *root, xmlNodePtr node, xmlNodePtr parent) {
    xmlNodePtr current = (node != NULL && node->type == XML_NAMESPACE_DECL) ? parent : node;
    while (current != NULL) {
        if (current == (xmlNodePtr)root) return 1;
        current = current->parent;
    }
    return 0;
}

/// Canonicalizes the subtree of `root` (mode: xmlC14NMode, no comments) into a new output buffer; NULL on failure.
/// The caller reads it with xmlOutputBufferGetContent/GetSize and frees it with xmlOutputBufferClose.
static inline xmlOutputBufferPtr esg_c14n_subtree(xmlDocPtr doc, xmlNodePtr root, int mode) {
    xmlOutputBufferPtr buffer = xmlAllocOutputBuffer(NULL);
    if (buffer == NULL) return NULL;
    if (xmlC14NExecute(doc, esg_c14n_in_subtree, root, mode, NULL, 0, buffer) < 0) {
        xmlOutputBufferClose(buffer);
        return NULL;
    }
    return buffer;
}
